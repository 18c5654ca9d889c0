//! Command-line definitions (clap). Flags fall back to `STRONGROOM_*` variables, then to the
//! config file, then to defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Strongroom: encrypted, multi-tenant content storage and delivery.
#[derive(Debug, Parser)]
#[command(name = "strongroom", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every command that opens a data directory.
#[derive(Debug, Args, Clone)]
pub struct InstanceArgs {
    /// TOML configuration file.
    #[arg(long, env = "STRONGROOM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./strongroom-data].
    #[arg(long, env = "STRONGROOM_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: unset for SQLite in the data dir, or postgres://user:pass@host:port/db.
    #[arg(
        long,
        env = "STRONGROOM_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Root key file [default: <data dir>/master.key]. STRONGROOM_MASTER_KEY (64 hex chars)
    /// supplies the key itself instead.
    #[arg(long, env = "STRONGROOM_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTPS server.
    Serve(ServeArgs),
    /// Operator commands: organizations, users, API keys.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The key hierarchy: status and rotation.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The background job queue (mail, media processing).
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Blob storage: its backends and the scrub that checks and repairs every copy.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Backups: create, list, verify, restore and prune (docs/backups.md).
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Client: spaces of an organization on a server (STRONGROOM_SERVER, STRONGROOM_API_KEY).
    #[command(subcommand)]
    Spaces(crate::client::SpacesCommand),
    /// Client commands against a server (STRONGROOM_SERVER, STRONGROOM_API_KEY).
    #[command(flatten)]
    Client(crate::client::ClientCommand),
}

/// `strongroom backup ...`. DEST is `fs:///path` or `s3://bucket/prefix?endpoint=...`; without
/// it, every `[backup] destinations` entry (restore needs one named).
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a backup now: a consistent snapshot of the database and every blob it names (only
    /// the blobs the destination lacks are copied), sealed under the root key.
    Create {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// Where to (default: every configured destination).
        #[arg(long, value_name = "DEST")]
        to: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The complete backups at a destination, oldest first.
    List {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// Where (default: every configured destination).
        #[arg(long, value_name = "DEST")]
        from: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read back every object of a backup and authenticate it; exits 1 naming the first bad one.
    Verify {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// The backup's id (bkp_...).
        id: String,
        /// Where (default: the configured destination holding it).
        #[arg(long, value_name = "DEST")]
        from: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup onto an empty data directory (and an empty database with
    /// --database-url). Needs only the backup and the root key (STRONGROOM_MASTER_KEY,
    /// --master-key-file, or DIR/master.key put there first).
    Restore {
        /// The backup's id (bkp_...).
        id: String,
        /// Where the backup is.
        #[arg(long, value_name = "DEST")]
        from: String,
        /// The new data directory (created if missing; must hold nothing but master.key).
        #[arg(long, value_name = "DIR")]
        data_dir: std::path::PathBuf,
        /// An empty PostgreSQL database to restore into instead of SQLite in DIR.
        #[arg(
            long,
            value_name = "URL",
            env = "STRONGROOM_DATABASE_URL",
            hide_env_values = true
        )]
        database_url: Option<String>,
        /// Root key file [default: DIR/master.key]; STRONGROOM_MASTER_KEY supplies the key itself.
        #[arg(long, env = "STRONGROOM_MASTER_KEY_FILE", value_name = "FILE")]
        master_key_file: Option<std::path::PathBuf>,
        /// TOML configuration file of the new instance (its `[storage]` receives the blobs).
        #[arg(long, env = "STRONGROOM_CONFIG", value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove old backups at every configured destination: keeps the newest of each of the
    /// last `keep_daily` days and `keep_weekly` weeks, and the newest; then the blobs no kept
    /// backup names (once a day old).
    Prune {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// Only this destination (default: every configured one).
        #[arg(long, value_name = "DEST")]
        from: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `strongroom storage ...`.
#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Each backend (does it answer?), and what the last scrub found on it.
    Status {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every copy of every blob by its tags and rewrite a missing or damaged copy from a
    /// good one; exits 1 when a blob has no good copy left.
    Scrub {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move an organization to another region: its new content goes there at once, and a job
    /// copies, verifies, then removes its existing blobs. Follows the job until it ends (and runs
    /// it here if no server takes it first); exits 1 if it fails.
    Move {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// The organization's id.
        org: String,
        /// The region to move it to (one with backends in `[storage]`).
        #[arg(long)]
        region: String,
        /// Queue the move and return at once (`storage move-status` follows it).
        #[arg(long)]
        detach: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// How far an organization's latest move to another region has come.
    MoveStatus {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// The organization's id.
        org: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `strongroom jobs ...`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// How many jobs are queued, running, done and failed, and the latest failures.
    Status {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `strongroom serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Instance settings.
    #[command(flatten)]
    pub instance: InstanceArgs,
    /// Address to listen on [default: 127.0.0.1:8443].
    #[arg(long, env = "STRONGROOM_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM) [default: a self-signed one in <data dir>/tls].
    #[arg(long, env = "STRONGROOM_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "STRONGROOM_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Also accept TLS 1.2 (AEAD cipher suites only). TLS 1.3 only by default.
    #[arg(long, env = "STRONGROOM_TLS12")]
    pub allow_tls12: bool,
    /// Largest accepted upload, in bytes [default: 5 GiB].
    #[arg(long, env = "STRONGROOM_MAX_UPLOAD_BYTES", value_name = "BYTES")]
    pub max_upload_bytes: Option<u64>,
    /// Longest lifetime of a download link, in seconds [default: 604800, a week].
    #[arg(long, env = "STRONGROOM_LINK_MAX_EXPIRES_IN", value_name = "SECS")]
    pub link_max_expires_in: Option<u64>,
    /// Origin clients reach the server at, for link URLs (e.g. https://files.example.com)
    /// [default: the origin each creating request was sent to].
    #[arg(long, env = "STRONGROOM_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Contact for /.well-known/security.txt [default: mailto:security@localhost].
    #[arg(long, env = "STRONGROOM_SECURITY_CONTACT", value_name = "URI")]
    pub security_contact: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "STRONGROOM_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Connection caps and the minimum body rate.
    #[command(flatten)]
    pub edge: EdgeArgs,
}

/// `serve` settings that protect the edge from slow or greedy clients.
#[derive(Debug, Args, Clone, Default)]
pub struct EdgeArgs {
    /// Connections open at once, in total; more are closed at once [default: 4096].
    #[arg(long, env = "STRONGROOM_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Connections open at once from one client address (an IPv6 client: its /64)
    /// [default: 256].
    #[arg(long, env = "STRONGROOM_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Slowest request body accepted, in bytes per second averaged over
    /// timeouts.body_rate_window; 0 turns the minimum off [default: 1024].
    #[arg(long, env = "STRONGROOM_MIN_BODY_RATE", value_name = "BYTES_PER_SEC")]
    pub min_body_rate: Option<u64>,
}

/// `strongroom admin ...`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create (or reuse) a user and an organization it owns, and print a new owner API key.
    Bootstrap {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// The owner's email address.
        #[arg(long)]
        email: String,
        /// The organization's name.
        #[arg(long)]
        org: String,
        /// Read the new user's password from standard input (else one is generated).
        #[arg(long)]
        password_stdin: bool,
        /// The organization's data-residency region: its content is stored only on that
        /// region's backends (default: `default`, or the only configured region).
        #[arg(long)]
        region: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a service API key with a role in an organization.
    CreateApiKey {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// Organization id.
        #[arg(long)]
        org: String,
        /// owner, admin, editor, contributor or viewer.
        #[arg(long)]
        role: String,
        /// A label for the key.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the lifecycle job once, now: spaces' retention rules move old assets to the trash,
    /// and assets past their organization's grace period in the trash are purged. The server
    /// runs it on its own every `[lifecycle] interval_secs` (default an hour).
    Lifecycle {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// Print JSON: {"trashed", "purged"}.
        #[arg(long)]
        json: bool,
    },
    /// Set an organization's storage quota (bytes and number of assets), or clear it with
    /// "none" so the server's default applies.
    SetQuota {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// Organization id.
        #[arg(long)]
        org: String,
        /// Most plaintext bytes, e.g. 10737418240 (10 GiB), or "none".
        #[arg(long)]
        max_bytes: String,
        /// Most assets, or "none".
        #[arg(long)]
        max_assets: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Erase a person's account, on their request (see docs/privacy.md): their sessions, keys,
    /// memberships and address go, and the address and detail of their audit events can no
    /// longer be read. Refused while they are an organization's only owner.
    EraseUser {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// The account's email address.
        #[arg(long)]
        email: String,
        /// Print JSON: {"user_id", "erased"}.
        #[arg(long)]
        json: bool,
    },
    /// Delete an organization and everything in it, for good (see docs/privacy.md). Members
    /// who belong to it alone are erased with it.
    DeleteOrg {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// Organization id.
        #[arg(long)]
        org: String,
        /// The organization's name, typed exactly, to confirm.
        #[arg(long)]
        confirm: String,
        /// Print JSON: {"org_id", "assets", "blobs", "members_erased"}.
        #[arg(long)]
        json: bool,
    },
    /// Add a member to an organization (creating the user if new).
    CreateUser {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// Organization id.
        #[arg(long)]
        org: String,
        /// owner, admin, editor, contributor or viewer.
        #[arg(long)]
        role: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `strongroom keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new key-encryption key and rewrap every data key under it (no data re-encrypted).
    Rotate {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The active KEK version and how many data keys each version wraps.
    Status {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `strongroom audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every organization's hash chain against its head and its signed checkpoints (exit 1
    /// naming the first broken event, or the events a rollback removed).
    Verify {
        /// Instance settings.
        #[command(flatten)]
        instance: InstanceArgs,
        /// Only this organization.
        #[arg(long)]
        org: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}
