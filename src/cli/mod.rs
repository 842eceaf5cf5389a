//! The command line: its arguments, and every command but `serve` (see `serve`), each of which
//! talks to the running daemon of the same data dir through its HTTP API (see
//! [`crate::client`]); `status` prints a node's status for people.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use peerdoc::core::access::short_peer;
use peerdoc::Config;

use crate::client::Client;
use crate::progress;

mod serve;
mod status;

use serve::serve;
pub(crate) use serve::ServeArgs;
use status::print_status;

mod blobs;
mod holders;
mod lists;

use lists::{print_docs, print_history, print_members};

/// peerdoc: peer-to-peer collaborative documents, end-to-end encrypted
///
/// Run `peerdoc serve` to start a node, then use the other commands (from another terminal) to
/// create, share, join, read and write documents. A DOC argument is a document id, a unique
/// prefix of it (4+ characters), or the document's local name.
#[derive(Parser, Debug)]
#[command(name = "peerdoc", version)]
pub(crate) struct Cli {
    /// Data directory of the node (database, identity). One data dir = one node.
    /// [default: the platform data dir, e.g. ~/.local/share/peerdoc]
    #[arg(long, global = true, env = "PEERDOC_DATA", value_name = "DIR")]
    pub(crate) data: Option<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run the node: libp2p networking, sync, storage and the local HTTP API.
    Serve(ServeArgs),
    /// Create a new empty document and print its id. It is rich text (headings, lists, tables…:
    /// `cat` prints it as Markdown and `write` takes Markdown), or plain text with --plain.
    New {
        /// A name for the document on this node (others name it as they like; `rename`
        /// changes it).
        name: String,
        /// Plain text, as in a code editor: `cat` and `write` take the text as it is.
        #[arg(long)]
        plain: bool,
    },
    /// List documents, and those this node keeps sealed for others (a holder cannot read
    /// them).
    Ls,
    /// Print a ticket that lets another node join DOC: as a writer, or with --read-only as a
    /// reader (it can read and follow the document, never change it). Only the owner and
    /// writers can share. Treat a ticket like a password.
    Share {
        /// The document: its name, its id, or the first 4+ characters of its id.
        doc: String,
        /// The ticket admits a reader: it can read and follow the document, never change it.
        #[arg(long)]
        read_only: bool,
    },
    /// Print this node's display name, or set it to NAME: the members of your documents see
    /// it (signed by this node) in member lists and beside your cursor. `name = "…"` in the
    /// config file sets it instead, at every start.
    Name {
        /// The new name (at most 64 bytes; leading and trailing spaces are dropped).
        name: Option<String>,
    },
    /// List DOC's members: name (or short peer id), role (owner, writer, reader), peer id.
    Members {
        /// The document: its name, its id, or the first 4+ characters of its id.
        doc: String,
    },
    /// Remove a member from DOC (owner only): the document gets a new key that the removed
    /// member never receives, and its writes are refused everywhere. Members it admitted go with
    /// it (listed; `--keep` keeps one), and every ticket shared so far stops admitting anyone:
    /// share new ones. Remaining members need to do nothing.
    Revoke {
        /// The document: its name, its id, or the first 4+ characters of its id.
        doc: String,
        /// The member's peer id (see `peerdoc members DOC`).
        peer: String,
        /// Keep this member although it was admitted through the removed one (repeatable).
        #[arg(long, value_name = "PEER")]
        keep: Vec<String>,
    },
    /// Ask the node at HOLDER to keep DOC sealed for its members (owner or writer): edits meet
    /// there even when members are never online together, and it cannot read them. HOLDER is
    /// a peer id, or an address ending in /p2p/<peer id>; the node must run with `--replica`
    /// (or `--relay`).
    Replicate {
        /// The document: its name, its id, or the first 4+ characters of its id.
        doc: String,
        /// The holder: a peer id, or /ip4/…/tcp/…/p2p/<peer id>.
        holder: String,
    },
    /// List DOC's holders: what each keeps (bytes, entries, how many this node has read), when
    /// this node last reached it, and why the last exchange failed if it did.
    Replicas {
        /// The document: its name, its id, or the first 4+ characters of its id.
        doc: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Let a holder of DOC go (owner or writer): it drops what it kept for DOC.
    Unreplicate {
        /// The document: its name, its id, or the first 4+ characters of its id.
        doc: String,
        /// The holder's peer id (see `peerdoc replicas DOC`).
        peer: String,
    },
    /// Add FILE to DOC as an attachment (owner or writer): it is sealed for DOC's members,
    /// kept here, and fetched by other members from every peer that has it. Prints its
    /// reference and the link that shows it; with --insert, also adds that link (an image
    /// for image files) to the end of DOC.
    Attach {
        /// The document: its name, its id, or the first 4+ characters of its id.
        doc: String,
        /// The file to add.
        file: PathBuf,
        /// Add a link to it (an image for images) to the end of the document.
        #[arg(long)]
        insert: bool,
        /// The name it is shown under (default: the file's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Fetch an attachment of DOC (from every online peer that has it, a range from each) and
    /// write it to FILE, or to its name in the current directory.
    Get {
        /// The document: its name, its id, or the first 4+ characters of its id.
        doc: String,
        /// The reference (`b1.…`, from `attach` or `blobs`), or a link that holds one.
        reference: String,
        /// Where to write it (`-` for standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// List DOC's attachments: size, name, how much of each is here, and which online peers
    /// have it.
    Blobs {
        /// The document: its name, its id, or the first 4+ characters of its id.
        doc: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove the attachments no document here refers to any more (now or in a version) and
    /// that were added more than a day ago (or --grace seconds).
    Gc {
        /// Seconds an attachment nothing refers to is kept after it was added.
        #[arg(long)]
        grace: Option<i64>,
    },
    /// Join a document from a ticket: fetch it from the sharer, or from any member the DHT
    /// finds if the sharer does not answer.
    Join {
        /// The ticket (`peerdoc1…`) from `peerdoc share` on a member's node.
        ticket: String,
        /// Local name (default: the name in the ticket).
        #[arg(long)]
        name: Option<String>,
        /// If no member is online, keep the document and wait: the node completes the join
        /// when one answers (even after a restart, or if this command is interrupted).
        #[arg(long)]
        wait: bool,
    },
    /// Print the document: Markdown for a rich document, the text of a plain one.
    Cat {
        /// The document: its name, its id, or the first 4+ characters of its id.
        doc: String,
        /// Print it as markdown, html or text (without formatting) instead.
        #[arg(long, value_name = "FORMAT", value_parser = ["markdown", "html", "text"])]
        format: Option<String>,
        /// Print it as it was at this version (its id, a unique prefix, or its name; see
        /// `history`).
        #[arg(long, value_name = "VERSION")]
        at: Option<String>,
    },
    /// Record a version of DOC now, named NAME if given (versions are also recorded by
    /// themselves after each burst of editing); with --of, give an existing version a name.
    /// Every member sees the same versions.
    Version {
        /// The document: its name, its id, or the first 4+ characters of its id.
        doc: String,
        /// A name for the version (at most 64 bytes).
        name: Option<String>,
        /// Name this existing version (id, unique prefix or name) instead of recording one.
        #[arg(long, value_name = "VERSION", requires = "name")]
        of: Option<String>,
    },
    /// List DOC's versions, oldest first: id, time, name, who wrote in it, and the characters
    /// inserted (+) and deleted (-) since the version before.
    History {
        /// The document: its name, its id, or the first 4+ characters of its id.
        doc: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what changed from version FROM to version TO (or to now) as a unified diff of the
    /// Markdown (the text, for a plain document).
    Diff {
        /// The document: its name, its id, or the first 4+ characters of its id.
        doc: String,
        /// The older version (id, unique prefix or name).
        from: String,
        /// The newer version [default: the document as it is now].
        to: Option<String>,
    },
    /// Make DOC equal to VERSION again, by a change that syncs to every member like any edit:
    /// nothing is rewritten, the versions since stay, and the restore is a version itself.
    Restore {
        /// The document: its name, its id, or the first 4+ characters of its id.
        doc: String,
        /// The version to go back to (id, unique prefix or name).
        version: String,
    },
    /// Replace the document with stdin, or append stdin with --append: Markdown for a rich
    /// document (only the blocks that differ change; --append adds blocks), text for a plain
    /// one (as a minimal diff). Either way, concurrent edits elsewhere survive.
    Write {
        /// The document: its name, its id, or the first 4+ characters of its id.
        doc: String,
        /// Add standard input at the end of the document instead of replacing its text.
        #[arg(long)]
        append: bool,
        /// Empty the document (on every member's node) when standard input is empty; without
        /// it, empty input is refused and nothing changes.
        #[arg(long)]
        allow_empty: bool,
    },
    /// Rename a document (locally).
    Rename {
        /// The document: its name, its id, or the first 4+ characters of its id.
        doc: String,
        /// The new name (unique on this node).
        name: String,
    },
    /// Delete this node's copy of a document.
    Rm {
        /// The document: its name, its id, or the first 4+ characters of its id.
        doc: String,
    },
    /// Node status: peer id, addresses, the web editor's URL (with the access token), connected
    /// peers, documents and their sync state.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Connected peers.
    Peers,
}

pub(crate) async fn run(cli: Cli) -> Result<()> {
    let data = cli.data.clone().unwrap_or_else(Config::default_data_dir);
    match cli.command {
        Command::Serve(args) => serve(data, args).await,
        other => tokio::task::spawn_blocking(move || client_command(data, other)).await?,
    }
}

fn client_command(data: PathBuf, command: Command) -> Result<()> {
    let client = Client::for_data_dir(&data)?;
    match command {
        Command::Serve(_) => unreachable!("handled by run"),
        Command::New { name, plain } => {
            let doc = client.create(&name, plain)?;
            println!("{}", doc.id);
        }
        Command::Ls => {
            let held = client.held()?;
            print_docs(&client.list()?, !held.is_empty());
            holders::print_held(&held);
        }
        Command::Attach {
            doc,
            file,
            insert,
            name,
        } => blobs::attach(&client, &doc, &file, name.as_deref(), insert)?,
        Command::Get {
            doc,
            reference,
            output,
        } => blobs::get(&client, &doc, &reference, output)?,
        Command::Blobs { doc, json } => {
            let blobs = client.blobs(&doc)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&blobs)?);
            } else {
                blobs::print_blobs(&blobs);
            }
        }
        Command::Gc { grace } => {
            let report = client.gc(grace)?;
            println!(
                "removed {} attachment(s), {} bytes; kept {}",
                report.removed, report.bytes, report.kept
            );
        }
        Command::Replicate { doc, holder } => {
            holders::print_replicated(&client.replicate(&doc, &holder)?)
        }
        Command::Replicas { doc, json } => {
            let replicas = client.replicas(&doc)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&replicas)?);
            } else {
                holders::print_replicas(&replicas);
            }
        }
        Command::Unreplicate { doc, peer } => {
            if client.unreplicate(&doc, &peer)? {
                println!("{peer} no longer holds the document and dropped what it kept");
            } else {
                println!(
                    "{peer} no longer holds the document; it was not reached, so it keeps the \
                     sealed data until told: run this again once it is online"
                );
            }
        }
        Command::Share { doc, read_only } => println!("{}", client.ticket(&doc, read_only)?),
        Command::Revoke { doc, peer, keep } => {
            let removed = client.revoke(&doc, &peer, &keep)?;
            println!(
                "removed {peer}; the document's key is now at epoch {}",
                removed.epoch
            );
            for member in &removed.with_it {
                println!(
                    "also removed {} {} ({}): it was admitted through {peer} (keep it with --keep {})",
                    member.label, member.peer, member.role, member.peer
                );
            }
            if removed.tickets_closed > 0 {
                println!(
                    "{} earlier ticket(s) no longer admit anyone: share new ones",
                    removed.tickets_closed
                );
            }
        }
        Command::Name { name: None } => match client.name()?.name {
            Some(name) => println!("{name}"),
            None => eprintln!(
                "this node has no name yet: members see its peer id; set one with \
                 `peerdoc name NAME`"
            ),
        },
        Command::Name { name: Some(name) } => {
            let set = client.set_name(&name)?;
            println!("{}", set.name.unwrap_or_default());
        }
        Command::Members { doc } => print_members(&client.members(&doc)?),
        Command::Join { ticket, name, wait } => {
            // What is tried, named: the sharer (from the ticket), then members the DHT finds.
            let sharer = peerdoc::core::ticket::Ticket::decode(&ticket)
                .map(|t| format!("the sharer {} or ", short_peer(&t.peer.to_string())))
                .unwrap_or_default();
            let spinner = progress::spinner(&format!(
                "joining: reaching {sharer}another member the DHT knows, then fetching the \
                 document"
            ));
            let mut doc = client.join(&ticket, name.as_deref(), wait);
            if let Some(info) = doc.as_ref().ok().filter(|info| info.joining) {
                spinner.set_message(format!(
                    "no member of {} is online; waiting for one (Ctrl-C leaves the node waiting)",
                    info.name
                ));
                let id = info.id.clone();
                doc = loop {
                    std::thread::sleep(Duration::from_millis(500));
                    match client.info(&id) {
                        Ok(info) if info.joining => continue,
                        other => break other,
                    }
                };
            }
            spinner.finish_and_clear();
            let doc = doc?;
            println!("joined {} ({})", doc.name, doc.id);
        }
        Command::Version { doc, name, of } => match of {
            Some(version) => {
                let id = client.name_version(&doc, &version, name.as_deref().unwrap_or(""))?;
                println!("{id}");
            }
            None => println!("{}", client.record_version(&doc, name.as_deref())?),
        },
        Command::History { doc, json } => {
            let versions = client.versions(&doc)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&versions)?);
            } else {
                print_history(&versions);
            }
        }
        Command::Diff { doc, from, to } => {
            use std::io::Write;
            let diff = client.diff(&doc, &from, to.as_deref())?;
            if diff.is_empty() {
                eprintln!("no differences");
            }
            let mut out = std::io::stdout().lock();
            out.write_all(diff.as_bytes())?;
            out.flush()?;
        }
        Command::Restore { doc, version } => match client.restore(&doc, &version)? {
            Some(id) => println!("restored {version}; the restore is version {id}"),
            None => println!("{doc} already equals {version}: nothing changed"),
        },
        Command::Cat { doc, format, at } => {
            use std::io::Write;
            let text = client.text(&doc, format.as_deref(), at.as_deref())?;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
        Command::Write {
            doc,
            append,
            allow_empty,
        } => {
            if std::io::stdin().is_terminal() {
                eprintln!(
                    "reading the new text of {doc} from standard input: type or paste it, then \
                     press Ctrl-D on a line of its own (Ctrl-C leaves the document as it is)"
                );
            }
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("stdin is not valid UTF-8 text")?;
            if text.is_empty() && !append && !allow_empty {
                anyhow::bail!(
                    "standard input was empty, so nothing was written (an empty text would erase \
                     {doc} on every member's node); to empty it on purpose, use --allow-empty"
                );
            }
            let bar = progress::upload(text.len());
            let written = client.write(&doc, &text, append, allow_empty, &|n| {
                bar.set_position(n as u64);
                if n == text.len() {
                    bar.set_message("sent; saving");
                }
            });
            bar.finish_and_clear();
            written?;
        }
        Command::Rename { doc, name } => {
            let doc = client.rename(&doc, &name)?;
            println!("renamed to {}", doc.name);
        }
        Command::Rm { doc } => client.delete(&doc)?,
        Command::Status { json } => {
            let status = client.status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status, client.editor_url().as_deref());
            }
        }
        Command::Peers => {
            let peers = client.peers()?;
            if peers.is_empty() {
                eprintln!("no peers connected");
            }
            for peer in peers {
                println!("{}  {}", peer.peer, peer.connection);
                for addr in &peer.addrs {
                    println!("  {addr}");
                }
            }
        }
    }
    Ok(())
}
