//! Progress on stderr for the CLI's long commands (a join, a large write). Drawn only when
//! stderr is a terminal: in pipes and logs the output stays one line per result.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Texts smaller than this are sent without a bar: they take no noticeable time.
const BAR_FROM: usize = 1 << 20;

/// A spinner with `message` and the time elapsed, until `finish_and_clear`.
pub(crate) fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message.to_string());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar for sending `len` bytes (hidden for small texts).
pub(crate) fn upload(len: usize) -> ProgressBar {
    if len < BAR_FROM {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64).with_message("sending");
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({elapsed})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
