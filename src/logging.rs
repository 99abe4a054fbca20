//! How blastwall's text log writes the fields of an event: as tracing-subscriber's default
//! formatter does, with every control character escaped. A client chooses some of those
//! values before it authenticates (the startup packet's `user`, `database`,
//! `application_name`) and statements carry any bytes: written raw, a newline in one of them
//! would let anyone on the network forge whole log lines (and an escape sequence repaint a
//! terminal). The JSON format escapes them already.
//!
//! Owns: [`EscapedFields`].

use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::FormatFields;

/// The default field formatter, control characters escaped (`\n`, `\u{1b}`).
#[derive(Debug, Default)]
pub struct EscapedFields(DefaultFields);

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> std::fmt::Result {
        let mut plain = String::new();
        self.0.format_fields(Writer::new(&mut plain), fields)?;
        for c in plain.chars() {
            if c.is_control() {
                write!(writer, "{}", c.escape_default())?;
            } else {
                writer.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_value_cannot_start_a_log_line_of_its_own() {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || buffer.clone())
            .with_ansi(false)
            .fmt_fields(EscapedFields::default())
            .finish();
        let forged = "nobody\n2026-11-29T03:00:00Z  INFO blastwall::session: session started user=postgres\u{1b}[31m";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(user = %forged, application_name = forged, "session started");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.contains(r"nobody\n2026") && text.contains(r"\u{1b}[31m"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }
}
