//! The file as raw sections: opened without blocking or reading past
//! [`MAX_FILE_SIZE`], parsed as INI, with warnings about duplicate and
//! unknown names.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use configparser::ini::Ini;

use super::keys::is_known_key;
use super::{ConfigError, MAX_FILE_SIZE};

/// Name configparser gives to keys above the first section header. A newline
/// cannot occur in a header line, so no `[...]` in the file can collide with it.
const NO_SECTION: &str = "\n";

/// Keys and values by section; a key without `=` has no value.
pub(super) type Sections = BTreeMap<String, BTreeMap<String, Option<String>>>;

/// What a path that is not a regular file is, for the error message.
pub fn file_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Reads at most [`MAX_FILE_SIZE`] bytes of UTF-8 text; the error is the problem text.
pub(super) fn read_bounded(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking, so that a FIFO or a device is refused rather than waited on.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read: {}", io_reason(&e)))?;
    let meta = f
        .metadata()
        .map_err(|e| format!("cannot read: {}", io_reason(&e)))?;
    if !meta.is_file() {
        return Err(format!(
            "is {}, not a regular file",
            file_kind(meta.file_type())
        ));
    }
    let mut buf = Vec::new();
    f.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read: {}", io_reason(&e)))?;
    if buf.len() as u64 > MAX_FILE_SIZE {
        return Err("is larger than 1 MiB".to_owned());
    }
    String::from_utf8(buf).map_err(|e| {
        format!(
            "is not UTF-8 text (bad byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Keys set twice in a section and sections that appear twice, each with
/// both line numbers. The parser keeps the last value of a key and merges
/// the keys of a repeated section.
fn duplicate_warnings(text: &str, file: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut sections: BTreeMap<String, usize> = BTreeMap::new();
    let mut keys: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut section = "-".to_owned();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.split_once(']')) {
            section = name.0.trim().to_lowercase();
            if let Some(first) = sections.insert(section.clone(), n) {
                sections.insert(section.clone(), first);
                out.push(ConfigError {
                    file: file.to_owned(),
                    section: section.clone(),
                    key: "-".to_owned(),
                    problem: format!(
                        "section appears twice (lines {first} and {n}); their keys are merged"
                    ),
                });
            }
            continue;
        }
        let key = line
            .split(['=', ':'])
            .next()
            .unwrap_or(line)
            .trim()
            .to_lowercase();
        if let Some(first) = keys.insert((section.clone(), key.clone()), n) {
            out.push(ConfigError {
                file: file.to_owned(),
                section: section.clone(),
                key,
                problem: format!("set twice (lines {first} and {n}); line {n} is used"),
            });
        }
    }
    out.into_iter().map(|e| e.to_string()).collect()
}

/// `No such file or directory`, without the ` (os error 2)` std appends.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Parses config text into sections; the warnings are about keys and
/// sections set twice and about unknown names.
pub(super) fn sections(text: &str, file: &str) -> Result<(Sections, Vec<String>), ConfigError> {
    if text.len() as u64 > MAX_FILE_SIZE {
        return Err(ConfigError::whole_file(file, "is larger than 1 MiB"));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut warnings = duplicate_warnings(text, file);
    let mut ini = Ini::new();
    ini.set_comment_symbols(&['#', ';']);
    ini.set_inline_comment_symbols(Some(&['#', ';']));
    ini.set_default_section(NO_SECTION);
    ini.set_multiline(false);
    let map = ini
        .read(text.to_owned())
        .map_err(|e| ConfigError::whole_file(file, e))?;
    // Sorted, so that warnings come out in a stable order.
    let sections = map
        .into_iter()
        .map(|(s, keys)| (s, keys.into_iter().collect()))
        .collect();
    warnings.extend(unknown_warnings(&sections, file));
    Ok((sections, warnings))
}

/// Keys above the first section, unknown sections and unknown keys; they
/// are ignored.
fn unknown_warnings(sections: &Sections, file: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (section, keys) in sections {
        if section == NO_SECTION {
            for key in keys.keys() {
                found.push(("-".to_owned(), key.clone(), "outside any section, ignored"));
            }
            continue;
        }
        if keys.is_empty() && is_known_key(section, "").is_none() {
            found.push((section.clone(), "-".to_owned(), "unknown section, ignored"));
        }
        for key in keys.keys() {
            match is_known_key(section, key) {
                None => found.push((section.clone(), key.clone(), "unknown section, ignored")),
                Some(false) => found.push((section.clone(), key.clone(), "unknown key, ignored")),
                Some(true) => {}
            }
        }
    }
    found
        .into_iter()
        .map(|(section, key, problem)| {
            // Warnings have the same one-line shape as errors.
            ConfigError {
                file: file.to_owned(),
                section,
                key,
                problem: problem.to_owned(),
            }
            .to_string()
        })
        .collect()
}
