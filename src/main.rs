//! The command line: parses arguments and calls the library.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tidings::config::{Config, Overrides, SYSTEM_CONFIG_PATH};
use tidings::domain::time::Clock;

/// mimalloc rather than glibc's malloc. With the 32 delivery workers, the HTTP threads and the
/// store writer all allocating, glibc's malloc took a fifth of the process's CPU (its arenas'
/// locks, consolidation) and kept what each thread's arena grew to; with mimalloc's
/// thread-local heaps h went from 6,616 to 8,721 – 9,970 deliveries/s in single runs (README
/// "Performance"). Built without asking for transparent huge pages (`no_thp`): with them its
/// peak RSS doubled (146 MiB).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tidings",
    version,
    about = "Signed outbound webhooks from one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance: API, dispatcher and delivery log.
    Serve {
        /// Config file (TOML). Default: /etc/tidings/tidings.toml if it exists.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Folder for the database and master key.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
        /// Development mode: allow http:// and local destinations. Never with real PHI.
        #[arg(long)]
        dev: bool,
    },
    /// Manage API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Manage admin UI users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Check a config file and print the effective settings.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Write a consistent snapshot of the database to a file, while tidings runs or not.
    Backup {
        /// Config file (TOML), for `[store] url`; `TIDINGS_STORE_URL` also names the store.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where to write the snapshot (must not exist).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// When a server holds the database: its base URL.
        #[arg(long, env = "TIDINGS_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// When a server holds the database: an admin API key.
        #[arg(long, env = "TIDINGS_API_KEY", hide_env_values = true)]
        key: Option<String>,
    },
    /// Restore a snapshot made by `tidings backup` into an empty data dir.
    Restore {
        /// The snapshot file.
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Re-encrypt everything sealed (signing secrets, secret headers, event payloads, logged
    /// bodies) with a new master key. Stop the server first.
    #[command(
        after_help = "With key files, a new master.key is generated in the data dir. With TIDINGS_MASTER_KEY, give the new key as TIDINGS_NEW_MASTER_KEY (32 bytes, base64 or hex) and switch the server to it afterwards."
    )]
    RotateMasterKey {
        /// Config file (TOML), for `[store] url`; `TIDINGS_STORE_URL` also names the store.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Copy the embedded database into an empty PostgreSQL database (stop the server first),
    /// every row as stored: sealed values stay sealed.
    #[command(
        after_help = "Every node then needs the same master key: copy DATA_DIR/master.key to each node's data dir, or set TIDINGS_MASTER_KEY, and point [store] url (or TIDINGS_STORE_URL) at the database. The embedded database is left as it was."
    )]
    Migrate {
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// The PostgreSQL database to copy into: postgres://user:pass@host:port/db.
        #[arg(long, env = "TIDINGS_STORE_URL", hide_env_values = true)]
        to: String,
    },
    /// Check a captured webhook request's signature, and say why it fails if it does.
    Verify {
        /// The rule's signing secret (whsec_…), or the public key (whpk_…) of a rule that
        /// signs with ed25519.
        #[arg(long, visible_alias = "public-key")]
        secret: String,
        /// A received header, "Name: value"; repeat for each.
        #[arg(long = "header")]
        header: Vec<String>,
        /// A file of received headers, one "Name: value" per line (a raw request head is fine).
        #[arg(long)]
        headers: Option<PathBuf>,
        /// The raw request body exactly as received.
        #[arg(long)]
        body: PathBuf,
        /// Oldest timestamp accepted, e.g. "5m".
        #[arg(long, default_value = "5m")]
        tolerance: humantime::Duration,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create an API key in the Default workspace and print it (alone) on stdout.
    Create {
        /// Config file (TOML), for `[store] url`; `TIDINGS_STORE_URL` also names the store.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// admin, ingest or owner (an owner key manages workspaces and acts in any of them).
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add an admin UI user. The password is read from `TIDINGS_PASSWORD`, else from the first
    /// line of standard input (so it stays out of the shell history and `ps`).
    Add {
        /// Config file (TOML), for `[store] url`; `TIDINGS_STORE_URL` also names the store.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        #[arg(long)]
        username: String,
        /// admin, editor or viewer (a group admin is an admin).
        #[arg(long, default_value = "")]
        role: String,
        /// An admin of every workspace, present and future, who switches between them all.
        #[arg(long)]
        group_admin: bool,
        #[arg(long, env = "TIDINGS_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Give an existing user a role in one more workspace (`--role none` takes it away).
    Grant {
        /// Config file (TOML), for `[store] url`; `TIDINGS_STORE_URL` also names the store.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        #[arg(long)]
        username: String,
        /// The workspace's id (wsp_…; `GET /api/v1/workspaces` with an owner key lists them).
        #[arg(long)]
        workspace: String,
        /// admin, editor, viewer or none.
        #[arg(long)]
        role: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            config,
            data_dir,
            listen,
            dev,
        } => serve(
            config,
            &Overrides {
                listen,
                data_dir,
                development: dev,
            },
        ),
        Command::Key {
            command:
                KeyCommand::Create {
                    config,
                    data_dir,
                    role,
                    name,
                },
        } => create_key(config.as_deref(), &data_dir, &role, &name),
        Command::User {
            command:
                UserCommand::Add {
                    config,
                    data_dir,
                    username,
                    role,
                    group_admin,
                    password,
                },
        } => add_user(
            config.as_deref(),
            &data_dir,
            &username,
            (&role, group_admin),
            password,
        ),
        Command::User {
            command:
                UserCommand::Grant {
                    config,
                    data_dir,
                    username,
                    workspace,
                    role,
                },
        } => grant_user(config.as_deref(), &data_dir, &username, &workspace, &role),
        Command::CheckConfig { file } => check_config(&file),
        Command::Backup {
            config,
            out,
            data_dir,
            url,
            key,
        } => backup(config.as_deref(), &out, &data_dir, &url, key.as_deref()),
        Command::Restore { from, data_dir } => restore(&from, &data_dir),
        Command::Migrate { data_dir, to } => migrate(&data_dir, &to),
        Command::RotateMasterKey { config, data_dir } => {
            rotate_master_key(config.as_deref(), &data_dir)
        }
        Command::Verify {
            secret,
            header,
            headers,
            body,
            tolerance,
        } => verify(
            &secret,
            &header,
            headers.as_deref(),
            &body,
            tolerance.into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIDINGS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal; journald and log files get plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
}

fn serve(config_file: Option<PathBuf>, overrides: &Overrides) -> anyhow::Result<()> {
    init_logging();
    let file = config_file.or_else(|| {
        let system = PathBuf::from(SYSTEM_CONFIG_PATH);
        system.exists().then_some(system)
    });
    let config = Config::load(file.as_deref(), std::env::vars(), overrides)?;
    let listener = TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let app = tidings::run(config, listener)?;
    app.wait().context("server stopped with an error")
}

/// The PostgreSQL store a command's config file or `TIDINGS_STORE_URL` names, if any.
fn postgres_store(config: Option<&Path>) -> anyhow::Result<Option<tidings::store::PgOptions>> {
    let config = Config::load(config, std::env::vars(), &Overrides::default())?;
    Ok(config.store.postgres())
}

fn create_key(
    config: Option<&Path>,
    data_dir: &Path,
    role: &str,
    name: &str,
) -> anyhow::Result<()> {
    let role = tidings::app::keys::validate_new_key(name, role).map_err(anyhow::Error::msg)?;
    let pg = postgres_store(config)?;
    let store = tidings::store::open(pg.as_ref(), data_dir, Clock::system())?;
    let (key, secret) = tidings::app::keys::mint(store.default_workspace(), name.trim(), role);
    let audit = tidings::domain::audit::AuditEntry::new(
        store.default_workspace(),
        tidings::domain::audit::Actor::Cli,
        "api_key.create",
        "api_key",
        key.id.as_str(),
    )
    .detail(format!(
        "{} key {:?} created with tidings key create",
        role.as_str(),
        key.name
    ));
    store.insert_api_key(key, audit)?;
    println!("{}", secret.expose());
    Ok(())
}

fn add_user(
    config: Option<&Path>,
    data_dir: &Path,
    username: &str,
    (role, group_admin): (&str, bool),
    password: Option<String>,
) -> anyhow::Result<()> {
    use tidings::domain::user::UserRole;
    let role = match (UserRole::parse(role), group_admin) {
        (Some(role), false) | (Some(role @ UserRole::Admin), true) => role,
        (None, true) if role.is_empty() => UserRole::Admin,
        (_, true) => anyhow::bail!("a group admin is an admin; leave out --role, or say admin"),
        (None, false) => {
            anyhow::bail!("role must be admin, editor or viewer, not {role:?}")
        }
    };
    let password = if let Some(p) = password {
        p
    } else {
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            eprintln!("Password for {username} (input is shown; end with Enter):");
        }
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    // A running server holds an embedded database; the message says to stop it or use the UI.
    let pg = postgres_store(config)?;
    let store = tidings::store::open(pg.as_ref(), data_dir, Clock::system())?;
    let user = if group_admin {
        tidings::app::users::new_group_admin(&store, username, &password)
    } else {
        tidings::app::users::new_user(
            &store,
            store.default_workspace(),
            username,
            role,
            &password,
            None,
            false,
        )
    }
    .map_err(anyhow::Error::msg)?;
    let what = if group_admin {
        "group admin"
    } else {
        role.as_str()
    };
    println!("{what} user {} added", user.username);
    Ok(())
}

fn grant_user(
    config: Option<&Path>,
    data_dir: &Path,
    username: &str,
    workspace: &str,
    role: &str,
) -> anyhow::Result<()> {
    use tidings::domain::user::UserRole;
    let role = match role {
        "none" => None,
        other => Some(UserRole::parse(other).with_context(|| {
            format!("role must be admin, editor, viewer or none, not {other:?}")
        })?),
    };
    let pg = postgres_store(config)?;
    let store = tidings::store::open(pg.as_ref(), data_dir, Clock::system())?;
    let user = tidings::app::users::grant(&store, username, workspace, role)
        .map_err(anyhow::Error::msg)?;
    match role {
        Some(role) => println!(
            "{} is now {} in workspace {workspace}",
            user.username,
            role.as_str()
        ),
        None => println!(
            "{} is no longer a member of workspace {workspace}",
            user.username
        ),
    }
    Ok(())
}

fn check_config(file: &Path) -> anyhow::Result<()> {
    let config = Config::load(Some(file), std::env::vars(), &Overrides::default())?;
    println!("# {} is valid. Effective settings:", file.display());
    print!("{}", config.to_toml());
    Ok(())
}

fn verify(
    secret: &str,
    header_args: &[String],
    headers_file: Option<&Path>,
    body_file: &Path,
    tolerance: std::time::Duration,
) -> anyhow::Result<()> {
    use tidings::delivery::verify::{parse_header_lines, verify};
    let mut headers = parse_header_lines(&header_args.join("\n"));
    if let Some(path) = headers_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        headers.extend(parse_header_lines(&text));
    }
    let body =
        std::fs::read(body_file).with_context(|| format!("cannot read {}", body_file.display()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    match verify(secret, &headers, &body, now, tolerance) {
        Ok(v) => {
            println!(
                "ok: {} signature verified (timestamp {} s old)",
                v.scheme, v.age_secs
            );
            Ok(())
        }
        Err(failure) => Err(anyhow::anyhow!("signature not valid: {failure}")),
    }
}

/// Snapshots directly when no server holds the database, else asks the server (same host) to
/// write one into its data dir and copies it out.
fn backup(
    config: Option<&Path>,
    out: &Path,
    data_dir: &Path,
    url: &str,
    key: Option<&str>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        postgres_store(config)?.is_none(),
        "the store is PostgreSQL ([store] url / TIDINGS_STORE_URL): back it up with pg_dump, or your database's own backups; `tidings backup` copies the embedded database only"
    );
    anyhow::ensure!(
        !out.exists(),
        "{} already exists; choose a new file",
        out.display()
    );
    match tidings::store::RedbStore::open(data_dir, Clock::system()) {
        Ok(store) => {
            let rows = store.backup_to(out)?;
            println!("{} rows written to {}", rows, out.display());
            Ok(())
        }
        Err(tidings::store::StoreError::InUse(_)) => {
            let key = key.context(
                "a running server holds the database: pass --key (an admin API key) and --url so it can take the snapshot",
            )?;
            let mut response = ureq::post(format!("{}/api/v1/backup", url.trim_end_matches('/')))
                .header("Authorization", format!("Bearer {key}"))
                .send_empty()
                .with_context(|| format!("asking the server at {url} for a backup"))?;
            let body: serde_json::Value =
                serde_json::from_str(&response.body_mut().read_to_string()?)?;
            let made = body["path"]
                .as_str()
                .context("the server's answer has no backup path")?;
            copy_out(Path::new(made), out).with_context(|| {
                format!("copying {made} (run this on the server's host, as its user)")
            })?;
            std::fs::remove_file(made).ok();
            println!("{} rows written to {}", body["rows"], out.display());
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Copies `from` to a new owner-only file `to`, under a temporary name until complete.
fn copy_out(from: &Path, to: &Path) -> anyhow::Result<()> {
    use tidings::security::files::PartialFile;
    let mut source = std::fs::File::open(from)?;
    let (partial, mut file) = PartialFile::create(to)?;
    std::io::copy(&mut source, &mut file)?;
    drop(file);
    partial.finish()?;
    Ok(())
}

fn migrate(data_dir: &Path, to: &str) -> anyhow::Result<()> {
    use tidings::security::crypto::Keyring;
    use tidings::store::{PgOptions, StoreError};
    anyhow::ensure!(
        to.starts_with("postgres://") || to.starts_with("postgresql://"),
        "--to must be a postgres:// URL, such as postgres://tidings@db.internal/tidings"
    );
    anyhow::ensure!(
        data_dir.join("tidings.redb").exists(),
        "{} holds no tidings database: nothing to migrate",
        data_dir.display()
    );
    let env_key = std::env::var("TIDINGS_MASTER_KEY").ok();
    if env_key.is_none() {
        // Without it, loading would create a fresh key that opens nothing.
        anyhow::ensure!(
            data_dir.join("master.key").exists(),
            "{} has no master.key: put back the key this database was sealed with (or set TIDINGS_MASTER_KEY)",
            data_dir.display()
        );
    }
    let options = PgOptions {
        url: to.to_owned(),
        lease: std::time::Duration::from_secs(60),
    };
    let keys = || Keyring::load(data_dir, env_key.as_deref());
    let copied = match tidings::store::migrate_to_postgres(data_dir, keys, &options) {
        Ok(copied) => copied,
        Err(StoreError::InUse(path)) => anyhow::bail!(
            "{path} is in use by a running tidings server: stop it first (e.g. `systemctl stop tidings`); migrate copies a database nobody is writing to"
        ),
        Err(e) => return Err(e.into()),
    };
    println!("copied {copied} into PostgreSQL");
    println!(
        "every node needs this master key: copy {} to each node's data dir or set TIDINGS_MASTER_KEY; then set [store] url (or TIDINGS_STORE_URL) and start the nodes",
        data_dir.join("master.key").display()
    );
    Ok(())
}

fn rotate_master_key(config: Option<&Path>, data_dir: &Path) -> anyhow::Result<()> {
    use tidings::security::crypto::Keyring;
    use tidings::store::{PgStore, RedbStore, StoreError};
    let pg = postgres_store(config)?;
    let env_key = std::env::var("TIDINGS_MASTER_KEY").ok();
    let new_env_key = std::env::var("TIDINGS_NEW_MASTER_KEY").ok();
    anyhow::ensure!(
        pg.is_some() || data_dir.join("tidings.redb").exists(),
        "{} holds no tidings database: nothing to rotate",
        data_dir.display()
    );
    if env_key.is_none() {
        anyhow::ensure!(
            new_env_key.is_none(),
            "TIDINGS_NEW_MASTER_KEY is only for keys given as TIDINGS_MASTER_KEY; with key files the new key is generated into {}",
            data_dir.join("master.key").display()
        );
        // Without it, loading would create a fresh key that opens nothing.
        anyhow::ensure!(
            data_dir.join("master.key").exists(),
            "{} has no master.key: put back the key this database was sealed with (or set TIDINGS_MASTER_KEY)",
            data_dir.display()
        );
    }
    let keys = || Keyring::load(data_dir, env_key.as_deref());
    let rotated = match &pg {
        Some(options) => {
            PgStore::rotate_master_key(options, keys, new_env_key.as_deref()).map(drop)
        }
        None => RedbStore::rotate_master_key(data_dir, keys, new_env_key.as_deref()).map(drop),
    };
    match rotated {
        Ok(()) => {}
        Err(StoreError::InUse(path)) if pg.is_some() => anyhow::bail!(
            "{path} is in use: stop every node first (e.g. `systemctl stop tidings` on each); the master key can only be rotated while no node runs"
        ),
        Err(StoreError::InUse(path)) => anyhow::bail!(
            "{path} is in use by a running tidings server: stop it first (e.g. `systemctl stop tidings`); the master key can only be rotated while the server is stopped"
        ),
        Err(e) => return Err(e.into()),
    }
    println!(
        "master key rotated: every signing secret, secret header, event payload and logged body is now sealed with the new key"
    );
    if env_key.is_some() {
        println!(
            "now give the server the new key: set TIDINGS_MASTER_KEY to the value of TIDINGS_NEW_MASTER_KEY; the old key no longer opens this data"
        );
    } else {
        println!(
            "the new key is {}; back it up. The old key no longer opens this data, but backups taken before now still need it",
            data_dir.join("master.key").display()
        );
    }
    Ok(())
}

fn restore(from: &Path, data_dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    use tidings::security::files::PartialFile;
    let target = data_dir.join("tidings.redb");
    anyhow::ensure!(
        !target.exists(),
        "{} already holds a database; restore into an empty data dir",
        data_dir.display()
    );
    // Owner-only, like what it will hold (a data dir that exists keeps its mode).
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    // Copied first, then checked: the source is only ever read, so it stays exactly as it
    // was whatever the check finds (a redb open for writing would rewrite a damaged file).
    let mut source =
        std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let (partial, mut copy) = PartialFile::create(&target)
        .with_context(|| format!("creating a file in {}", data_dir.display()))?;
    std::io::copy(&mut source, &mut copy)
        .with_context(|| format!("copying {} to {}", from.display(), target.display()))?;
    drop(copy);
    tidings::store::backup::check_backup(partial.path(), from)?;
    partial
        .finish()
        .with_context(|| format!("moving the copy to {}", target.display()))?;
    println!("restored {} into {}", from.display(), data_dir.display());
    if !data_dir.join("master.key").exists() {
        eprintln!(
            "note: put the original master.key in {} (or set TIDINGS_MASTER_KEY) before starting: \
             signing secrets, secret headers, event payloads and logged bodies cannot be read without it",
            data_dir.display()
        );
    }
    Ok(())
}
