//! Small blocking HTTP client for the CLI: finds the running daemon of a data dir through the
//! API address and token files it publishes (`api.addr`, `api.token`), and calls the JSON API
//! with the token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use peerdoc::api::dto::{
    Attached, BlobInfo, DocInfo, GcReport, HeldInfo, HolderInfo, MemberInfo, NodeName, PeerStatus,
    Removed, Status, Transfer, VersionInfo,
};
use peerdoc::api::MAX_BODY_BYTES;
use peerdoc::{api_addr_path, api_token_path};

/// Bytes per request when appending a large text.
const APPEND_PART: usize = MAX_BODY_BYTES / 2;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    #[error(
        "no peerdoc daemon is running for data dir {0}; start one with `peerdoc --data {0} serve`"
    )]
    NoDaemon(PathBuf),
    #[error("{0}")]
    Api(String),
    #[error("could not talk to the daemon: {0}")]
    Transport(String),
}

pub(crate) struct Client {
    base: String,
    token: Option<String>,
    data_dir: PathBuf,
    agent: ureq::Agent,
}

impl Client {
    /// Connects to the daemon serving `data_dir`.
    pub(crate) fn for_data_dir(data_dir: &Path) -> Result<Client, ClientError> {
        let addr = std::fs::read_to_string(api_addr_path(data_dir))
            .map_err(|_| ClientError::NoDaemon(data_dir.to_path_buf()))?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(3))
            // Joining waits for the sharer; everything else is quick.
            .timeout(Duration::from_secs(120))
            .build();
        let token = std::fs::read_to_string(api_token_path(data_dir)).ok();
        Ok(Client {
            token,
            base: format!("http://{}", addr.trim()),
            data_dir: data_dir.to_path_buf(),
            agent,
        })
    }

    /// The web editor's URL with the access token, as `serve` printed it.
    pub(crate) fn editor_url(&self) -> Option<String> {
        let token = self.token.as_deref()?.trim();
        Some(format!("{}/?token={token}", self.base))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let request = self.agent.request(method, &self.url(path));
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {}", token.trim())),
            None => request,
        }
    }

    fn check(
        &self,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<ureq::Response, ClientError> {
        match result {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(_, r)) => {
                let body: serde_json::Value = r.into_json().unwrap_or_default();
                let message = body["error"]
                    .as_str()
                    .unwrap_or("the daemon returned an error");
                // The API names what failed; the CLI adds the command that helps.
                let hint = match body["code"].as_str().unwrap_or_default() {
                    "unknown_doc" => "; list documents with `peerdoc ls`",
                    "not_a_member" => "; list them with `peerdoc members DOC`",
                    "not_a_holder" => "; list them with `peerdoc replicas DOC`",
                    "holder_refused" | "holder_unreachable" => {
                        "; the holder must run `peerdoc serve --replica` (or --relay)"
                    }
                    "own_ticket" => " (one with another --data dir)",
                    "unreachable" | "no_writer" | "join_failed" => {
                        "; run the same command with --wait to keep the document and finish the \
                         join when a member comes online"
                    }
                    "payload_too_large" => {
                        "; for a larger text, `peerdoc write DOC --append` into an empty document"
                    }
                    _ => "",
                };
                Err(ClientError::Api(format!("{message}{hint}")))
            }
            // A stale address file from a daemon that died.
            Err(ureq::Error::Transport(t)) if t.kind() == ureq::ErrorKind::ConnectionFailed => {
                Err(ClientError::NoDaemon(self.data_dir.clone()))
            }
            Err(e) => Err(ClientError::Transport(e.to_string())),
        }
    }

    fn json<T: DeserializeOwned>(&self, r: ureq::Response) -> Result<T, ClientError> {
        r.into_json()
            .map_err(|e| ClientError::Transport(e.to_string()))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let r = self.check(self.request("GET", path).call())?;
        self.json(r)
    }

    fn doc_path(doc: &str) -> String {
        format!("/api/docs/{}", urlencode(doc))
    }

    pub(crate) fn status(&self) -> Result<Status, ClientError> {
        self.get("/api/status")
    }
    pub(crate) fn peers(&self) -> Result<Vec<PeerStatus>, ClientError> {
        self.get("/api/peers")
    }
    pub(crate) fn list(&self) -> Result<Vec<DocInfo>, ClientError> {
        self.get("/api/docs")
    }
    /// Creates a document, rich or (`plain`) plain text.
    pub(crate) fn create(&self, name: &str, plain: bool) -> Result<DocInfo, ClientError> {
        let kind = if plain { "plain" } else { "rich" };
        let r = self.check(
            self.request("POST", "/api/docs")
                .send_json(serde_json::json!({ "name": name, "kind": kind })),
        )?;
        self.json(r)
    }
    pub(crate) fn ticket(&self, doc: &str, read_only: bool) -> Result<String, ClientError> {
        let path = format!("{}/ticket", Self::doc_path(doc));
        let r = self.check(
            self.request("POST", &path)
                .send_json(serde_json::json!({ "read_only": read_only })),
        )?;
        let v: serde_json::Value = self.json(r)?;
        Ok(v["ticket"].as_str().unwrap_or_default().to_string())
    }
    pub(crate) fn revoke(
        &self,
        doc: &str,
        peer: &str,
        keep: &[String],
    ) -> Result<Removed, ClientError> {
        let path = format!(
            "{}/members/{}?keep={}",
            Self::doc_path(doc),
            urlencode(peer),
            urlencode(&keep.join(","))
        );
        let r = self.check(self.request("DELETE", &path).call())?;
        self.json(r)
    }
    pub(crate) fn name(&self) -> Result<NodeName, ClientError> {
        self.get("/api/name")
    }
    pub(crate) fn set_name(&self, name: &str) -> Result<NodeName, ClientError> {
        let r = self.check(
            self.request("PUT", "/api/name")
                .send_json(serde_json::json!({ "name": name })),
        )?;
        self.json(r)
    }
    pub(crate) fn versions(&self, doc: &str) -> Result<Vec<VersionInfo>, ClientError> {
        self.get(&format!("{}/versions", Self::doc_path(doc)))
    }
    /// Records a version (named or not); returns its id.
    pub(crate) fn record_version(
        &self,
        doc: &str,
        name: Option<&str>,
    ) -> Result<String, ClientError> {
        let path = format!("{}/versions", Self::doc_path(doc));
        let r = self.check(
            self.request("POST", &path)
                .send_json(serde_json::json!({ "name": name })),
        )?;
        let v: serde_json::Value = self.json(r)?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }
    /// Names a version; returns its id.
    pub(crate) fn name_version(
        &self,
        doc: &str,
        version: &str,
        name: &str,
    ) -> Result<String, ClientError> {
        let path = format!("{}/versions/{}", Self::doc_path(doc), urlencode(version));
        let r = self.check(
            self.request("PATCH", &path)
                .send_json(serde_json::json!({ "name": name })),
        )?;
        let v: serde_json::Value = self.json(r)?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }
    /// Restores a version; returns the restore's version id (`None`: nothing changed).
    pub(crate) fn restore(&self, doc: &str, version: &str) -> Result<Option<String>, ClientError> {
        let path = format!(
            "{}/versions/{}/restore",
            Self::doc_path(doc),
            urlencode(version)
        );
        let r = self.check(self.request("POST", &path).call())?;
        let v: serde_json::Value = self.json(r)?;
        Ok(v["id"].as_str().map(str::to_string))
    }
    /// A unified diff from version `from` to `to` (or now).
    pub(crate) fn diff(
        &self,
        doc: &str,
        from: &str,
        to: Option<&str>,
    ) -> Result<String, ClientError> {
        let mut request = self
            .request("GET", &format!("{}/diff", Self::doc_path(doc)))
            .query("from", from);
        if let Some(to) = to {
            request = request.query("to", to);
        }
        let r = self.check(request.call())?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut r.into_reader(), &mut text)
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(text)
    }
    pub(crate) fn replicas(&self, doc: &str) -> Result<Vec<HolderInfo>, ClientError> {
        self.get(&format!("{}/replicas", Self::doc_path(doc)))
    }
    pub(crate) fn replicate(&self, doc: &str, holder: &str) -> Result<HolderInfo, ClientError> {
        let path = format!("{}/replicas", Self::doc_path(doc));
        let r = self.check(
            self.request("POST", &path)
                .send_json(serde_json::json!({ "holder": holder })),
        )?;
        self.json(r)
    }
    /// Lets a holder go; whether it confirmed.
    pub(crate) fn unreplicate(&self, doc: &str, peer: &str) -> Result<bool, ClientError> {
        let path = format!("{}/replicas/{}", Self::doc_path(doc), urlencode(peer));
        let r = self.check(self.request("DELETE", &path).call())?;
        let v: serde_json::Value = self.json(r)?;
        Ok(v["confirmed"].as_bool().unwrap_or(false))
    }
    pub(crate) fn held(&self) -> Result<Vec<HeldInfo>, ClientError> {
        self.get("/api/held")
    }
    pub(crate) fn members(&self, doc: &str) -> Result<Vec<MemberInfo>, ClientError> {
        self.get(&format!("{}/members", Self::doc_path(doc)))
    }
    /// Joins; with `wait`, a join no member can serve yet is kept and completes later.
    pub(crate) fn join(
        &self,
        ticket: &str,
        name: Option<&str>,
        wait: bool,
    ) -> Result<DocInfo, ClientError> {
        let r = self.check(
            self.request("POST", "/api/join")
                .send_json(serde_json::json!({ "ticket": ticket, "name": name, "wait": wait })),
        )?;
        self.json(r)
    }

    pub(crate) fn info(&self, doc: &str) -> Result<DocInfo, ClientError> {
        self.get(&Self::doc_path(doc))
    }
    /// The content, or the document in `format` (`markdown`, `html`, `text`).
    pub(crate) fn text(
        &self,
        doc: &str,
        format: Option<&str>,
        at: Option<&str>,
    ) -> Result<String, ClientError> {
        let mut request = self.request("GET", &format!("{}/text", Self::doc_path(doc)));
        if let Some(format) = format {
            request = request.query("format", format);
        }
        if let Some(at) = at {
            request = request.query("at", at);
        }
        let r = self.check(request.call())?;
        // Not `into_string`: it refuses bodies over 10 MB, and documents can be larger.
        let mut text = String::new();
        std::io::Read::read_to_string(&mut r.into_reader(), &mut text)
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(text)
    }
    /// Replaces the text, or appends to it. An append larger than the API takes in one request
    /// goes in parts; a replacement must fit in one (it is one diff).
    /// `sent` is told how many bytes of `text` have gone so far.
    pub(crate) fn write(
        &self,
        doc: &str,
        text: &str,
        append: bool,
        allow_empty: bool,
        sent: &dyn Fn(usize),
    ) -> Result<(), ClientError> {
        if !append && text.len() > MAX_BODY_BYTES {
            // Said here: the daemon would refuse it only after most of it was sent.
            return Err(ClientError::Api(format!(
                "the text is larger than {} MiB, the most one replacement takes; for a larger \
                 text, `peerdoc write DOC --append` into an empty document",
                MAX_BODY_BYTES >> 20
            )));
        }
        let url = format!(
            "{}/text?append={append}&allow_empty={allow_empty}",
            Self::doc_path(doc)
        );
        let mut rest = text;
        loop {
            let mut cut = if append {
                rest.len().min(APPEND_PART)
            } else {
                rest.len()
            };
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let (part, more) = rest.split_at(cut);
            let before = text.len() - rest.len();
            let reader = Counted {
                bytes: part.as_bytes(),
                read: 0,
                report: &|n| sent(before + n),
            };
            self.check(
                self.request("PUT", &url)
                    .set("Content-Type", "text/plain; charset=utf-8")
                    .set("Content-Length", &part.len().to_string())
                    .send(reader),
            )?;
            if more.is_empty() {
                return Ok(());
            }
            rest = more;
        }
    }
    pub(crate) fn rename(&self, doc: &str, name: &str) -> Result<DocInfo, ClientError> {
        let r = self.check(
            self.request("PATCH", &Self::doc_path(doc))
                .send_json(serde_json::json!({ "name": name })),
        )?;
        self.json(r)
    }
    pub(crate) fn delete(&self, doc: &str) -> Result<(), ClientError> {
        self.check(self.request("DELETE", &Self::doc_path(doc)).call())?;
        Ok(())
    }

    /// Sends the file at `path` as an attachment of `doc`; `sent` is told the bytes sent.
    pub(crate) fn attach(
        &self,
        doc: &str,
        path: &Path,
        name: Option<&str>,
        insert: bool,
        sent: &dyn Fn(u64),
    ) -> Result<Attached, ClientError> {
        let file = std::fs::File::open(path)
            .map_err(|e| ClientError::Api(format!("cannot read {}: {e}", path.display())))?;
        let len = file
            .metadata()
            .map_err(|e| ClientError::Api(format!("cannot read {}: {e}", path.display())))?
            .len();
        let mut request = self
            .request("POST", &format!("{}/blobs", Self::doc_path(doc)))
            .query("insert", if insert { "true" } else { "false" })
            .set("Content-Type", "application/octet-stream")
            .set("Content-Length", &len.to_string());
        let name = name
            .map(str::to_string)
            .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()));
        if let Some(name) = &name {
            request = request.query("name", name);
        }
        let reader = CountedFile {
            file,
            read: 0,
            report: sent,
        };
        let r = self.check(request.send(reader))?;
        self.json(r)
    }
    pub(crate) fn blobs(&self, doc: &str) -> Result<Vec<BlobInfo>, ClientError> {
        self.get(&format!("{}/blobs", Self::doc_path(doc)))
    }
    /// Starts (or watches) the download of an attachment here.
    pub(crate) fn transfer(&self, doc: &str, reference: &str) -> Result<Transfer, ClientError> {
        self.get(&format!(
            "{}/transfers/{}",
            Self::doc_path(doc),
            urlencode(reference)
        ))
    }
    /// Copies an attachment that is here into `out`; the bytes copied.
    pub(crate) fn download(
        &self,
        doc: &str,
        reference: &str,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, ClientError> {
        let path = format!("{}/blobs/{}", Self::doc_path(doc), urlencode(reference));
        let r = self.check(self.request("GET", &path).call())?;
        std::io::copy(&mut r.into_reader(), out).map_err(|e| ClientError::Transport(e.to_string()))
    }
    pub(crate) fn gc(&self, grace: Option<i64>) -> Result<GcReport, ClientError> {
        let mut request = self.request("POST", "/api/gc");
        if let Some(grace) = grace {
            request = request.query("grace", &grace.to_string());
        }
        let r = self.check(request.call())?;
        self.json(r)
    }
}

/// A file sent as a request body, reporting how much of it has been read (sent).
struct CountedFile<'a> {
    file: std::fs::File,
    read: u64,
    report: &'a dyn Fn(u64),
}

impl std::io::Read for CountedFile<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.read += n as u64;
        (self.report)(self.read);
        Ok(n)
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A request body that reports how much of it has been read (sent).
struct Counted<'a> {
    bytes: &'a [u8],
    read: usize,
    report: &'a dyn Fn(usize),
}

impl std::io::Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.bytes[self.read..].len().min(buf.len()).min(64 << 10);
        buf[..n].copy_from_slice(&self.bytes[self.read..self.read + n]);
        self.read += n;
        (self.report)(self.read);
        Ok(n)
    }
}
