//! The attachment commands' work and output: `attach` (with a bar while the file is sent),
//! `get` (a bar while it is fetched from the document's peers), `blobs`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use peerdoc::api::dto::BlobInfo;

use crate::client::Client;

/// Files smaller than this get no bar.
const BAR_FROM: u64 = 1 << 20;

fn bar(len: u64, message: &str) -> ProgressBar {
    if len < BAR_FROM {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_message(message.to_string());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ({elapsed})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

pub(super) fn attach(
    client: &Client,
    doc: &str,
    file: &Path,
    name: Option<&str>,
    insert: bool,
) -> Result<()> {
    let len = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    let bar = bar(len, "sealing and storing");
    let attached = client.attach(doc, file, name, insert, &|n| bar.set_position(n))?;
    bar.finish_and_clear();
    println!("{}", attached.reference);
    // On a terminal, what it is; in a pipe, the reference alone.
    if !std::io::stderr().is_terminal() {
        return Ok(());
    }
    eprintln!(
        "{} ({} bytes) added{}; link: {}",
        attached.name,
        attached.size,
        if insert { " to the document" } else { "" },
        attached.link
    );
    Ok(())
}

pub(super) fn get(
    client: &Client,
    doc: &str,
    reference: &str,
    output: Option<PathBuf>,
) -> Result<()> {
    let mut transfer = client.transfer(doc, reference)?;
    let bar = bar(transfer.size, "fetching");
    loop {
        bar.set_position(transfer.have);
        match transfer.state.as_str() {
            "done" => break,
            "failed" => {
                bar.abandon();
                bail!(
                    "{}",
                    transfer
                        .error
                        .unwrap_or_else(|| "the download failed".into())
                );
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(200));
        transfer = client.transfer(doc, reference)?;
    }
    bar.finish_and_clear();
    let from: Vec<String> = transfer
        .sources
        .iter()
        .filter(|s| s.bytes > 0 || s.banned)
        .map(|s| {
            let banned = if s.banned {
                ", banned: a bad piece"
            } else {
                ""
            };
            format!("{} ({} bytes{banned})", short(&s.peer), s.bytes)
        })
        .collect();
    let terminal = std::io::stderr().is_terminal();
    if !from.is_empty() && terminal {
        eprintln!("fetched from {}", from.join(", "));
    }
    let chosen = output.is_some();
    let output = output.unwrap_or_else(|| PathBuf::from(default_name(reference)));
    if !chosen && output.exists() {
        // The name came from the link (a writer chose it): never over another file.
        bail!(
            "{} exists here; give another name with -o FILE",
            output.display()
        );
    }
    let bytes = if output.as_os_str() == "-" {
        client.download(doc, reference, &mut std::io::stdout().lock())?
    } else {
        // Written beside, then renamed: a broken download leaves no half file under the name.
        let partial = output.with_extension("part");
        let mut file = std::fs::File::create(&partial)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        let bytes = client.download(doc, reference, &mut file)?;
        file.sync_all()?;
        std::fs::rename(&partial, &output)
            .with_context(|| format!("cannot write {}", output.display()))?;
        if terminal {
            eprintln!("{} bytes written to {}", bytes, output.display());
        }
        bytes
    };
    if bytes != transfer.size {
        bail!(
            "the daemon sent {bytes} bytes of {}; try again",
            transfer.size
        );
    }
    Ok(())
}

/// The file name a link gives (`…/<ref>/<name>`), or the hash's start.
fn default_name(reference: &str) -> String {
    let refs = peerdoc::core::blob::refs_in(reference);
    if let Some(r) = refs.first() {
        let text = r.to_string();
        if let Some(at) = reference.find(&text) {
            let name = reference[at + text.len()..].trim_start_matches('/');
            // A plain file name only: no folders, no hidden files.
            if !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.') {
                return name.to_string();
            }
        }
        return format!("{}.bin", &r.hash.to_hex()[..16]);
    }
    "attachment.bin".into()
}

fn short(peer: &str) -> String {
    peer.chars()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

pub(super) fn print_blobs(blobs: &[BlobInfo]) {
    if blobs.is_empty() {
        println!("no attachments");
        return;
    }
    println!(
        "{:<18} {:>12} {:>6}  {:<24} {:<6} {:<9} REFERENCE",
        "HASH", "SIZE", "HERE", "NAME", "PEERS", "REPLICAS"
    );
    for b in blobs {
        let here = if b.size == 0 || b.here >= b.size {
            "all".to_string()
        } else {
            format!("{}%", b.here * 100 / b.size)
        };
        let name = b.name.clone().unwrap_or_else(|| {
            if b.referenced {
                "-".into()
            } else {
                "(not in the document)".into()
            }
        });
        println!(
            "{:<18} {:>12} {:>6}  {:<24} {:<6} {:<9} {}",
            &b.hash[..16],
            b.size,
            here,
            name,
            b.peers.len(),
            b.replicas.len(),
            b.reference.as_deref().unwrap_or("-")
        );
    }
}
