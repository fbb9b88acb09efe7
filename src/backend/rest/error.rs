//! Failures of a request as [`BackendError`]s: what the transport reports
//! (timeout, connection, answer too large) and what an answer's status says.

use std::io::ErrorKind;

use crate::backend::BackendError;

/// Characters of an error answer kept in a [`BackendError`].
pub(crate) const ERR_SNIPPET: usize = 300;

/// A kept-alive connection the server closed meanwhile: the request may go
/// once more on a new one.
pub(crate) fn stale_connection(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::Io(io) if matches!(
        io.kind(),
        ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
    ))
}

/// What a transport failure means for the job.
pub(crate) fn classify(e: ureq::Error) -> BackendError {
    match e {
        ureq::Error::Timeout(_) => BackendError::Timeout,
        ureq::Error::Io(io) if matches!(io.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
            BackendError::Timeout
        }
        ureq::Error::BodyExceedsLimit(n) => {
            BackendError::BadAnswer(format!("answer larger than {n} bytes"))
        }
        ureq::Error::Json(e) => BackendError::BadAnswer(e.to_string()),
        other => BackendError::Connect(other.to_string()),
    }
}

/// The start of an answer, fit for a log line.
pub(crate) fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let mut out: String = s
        .chars()
        .take(ERR_SNIPPET)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > ERR_SNIPPET {
        out.push('…');
    }
    out
}

/// An answer whose status the caller does not expect.
pub(crate) fn http(status: u16, body: &[u8]) -> BackendError {
    BackendError::Http {
        status,
        body: snippet(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures() {
        let io = |k: ErrorKind| ureq::Error::Io(std::io::Error::from(k));
        assert!(stale_connection(&io(ErrorKind::ConnectionReset)));
        assert!(stale_connection(&io(ErrorKind::UnexpectedEof)));
        assert!(!stale_connection(&io(ErrorKind::ConnectionRefused)));
        assert_eq!(classify(io(ErrorKind::TimedOut)), BackendError::Timeout);
        assert!(matches!(
            classify(io(ErrorKind::ConnectionRefused)),
            BackendError::Connect(_)
        ));
        assert!(matches!(
            classify(ureq::Error::BodyExceedsLimit(10)),
            BackendError::BadAnswer(m) if m.contains("10 bytes")
        ));
    }

    #[test]
    fn error_answers_are_cut_short() {
        assert!(matches!(
            http(500, &[b'x'; 1000]),
            BackendError::Http { status: 500, body } if body.chars().count() == ERR_SNIPPET + 1
        ));
        assert_eq!(snippet(b"a\nb"), "a b");
    }
}
