//! The API token: where it is read from, and the `Authorization` header it
//! goes in. It never appears in errors or logs.

use std::io::Read as _;
use std::path::Path;

use crate::config::BackendConf;

const MAX_TOKEN_LEN: usize = 256;
/// Largest token file read.
const MAX_FILE: u64 = 4096;

/// Reads the API token: `token_file` if set (trimmed), else the environment
/// variable `env_var`. Errors never contain the token.
pub fn load_token(conf: &BackendConf, env_var: &str) -> Result<String, String> {
    let token = match &conf.token_file {
        Some(path) => read_token_file(path)?,
        None => match std::env::var(env_var) {
            Ok(v) => v.trim().to_owned(),
            Err(std::env::VarError::NotPresent) => {
                return Err(format!("no API token: set token_file or {env_var}"))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!("{env_var} is not valid UTF-8"))
            }
        },
    };
    let source = match &conf.token_file {
        Some(p) => p.display().to_string(),
        None => env_var.to_owned(),
    };
    if token.is_empty() {
        return Err(format!("API token in {source} is empty"));
    }
    if token.len() > MAX_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "API token in {source} is not a token (printable ASCII, at most {MAX_TOKEN_LEN} characters, no spaces)"
        ));
    }
    Ok(token)
}

fn read_token_file(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
    let mut buf = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
    if buf.len() as u64 > MAX_FILE {
        return Err(format!("token file {} is too large", path.display()));
    }
    String::from_utf8(buf)
        .map(|s| s.trim().to_owned())
        .map_err(|_| format!("token file {} is not UTF-8", path.display()))
}

/// How a backend presents its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `Authorization: Token <token>` (Nautobot, Netbox v1 tokens).
    Token,
    /// `Authorization: Bearer <token>` (Netbox 4.5+ v2 tokens).
    Bearer,
}

impl Scheme {
    /// The whole `Authorization` header value.
    pub(crate) fn header(self, token: &str) -> String {
        match self {
            Scheme::Token => format!("Token {token}"),
            Scheme::Bearer => format!("Bearer {token}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn token_from_file_or_env_and_never_shown() {
        let dir = std::env::temp_dir().join(format!("nfdhcpd-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, format!("  {TOKEN}\n")).unwrap();
        let mut c = BackendConf {
            token_file: Some(file.clone()),
            ..BackendConf::default()
        };
        assert_eq!(load_token(&c, "NFDHCPD_TEST_UNSET_VAR").unwrap(), TOKEN);
        let secret = "s3cr3t value";
        std::fs::write(&file, secret).unwrap();
        let e = load_token(&c, "X").unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
        std::fs::write(&file, "x".repeat(5000)).unwrap();
        assert!(load_token(&c, "X").unwrap_err().contains("too large"));
        std::fs::write(&file, "\n").unwrap();
        assert!(load_token(&c, "X").unwrap_err().contains("empty"));
        c.token_file = Some(dir.join("missing"));
        assert!(load_token(&c, "X").is_err());
        std::fs::remove_dir_all(&dir).unwrap();

        c.token_file = None;
        let var = format!("NFDHCPD_TEST_TOKEN_{}", std::process::id());
        assert!(load_token(&c, &var).unwrap_err().contains(&var));
        std::env::set_var(&var, format!("{TOKEN} "));
        assert_eq!(load_token(&c, &var).unwrap(), TOKEN);
        std::env::remove_var(&var);
    }

    #[test]
    fn schemes() {
        assert_eq!(Scheme::Token.header("abc"), "Token abc");
        assert_eq!(Scheme::Bearer.header("nbt_k.s"), "Bearer nbt_k.s");
    }
}
