//! The command line: parses arguments and calls the library.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tidings::config::{Config, Overrides, SYSTEM_CONFIG_PATH};

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
    /// Check a config file and print the effective settings.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create an API key in the Default workspace and print it (alone) on stdout.
    Create {
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// admin or ingest.
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: String,
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
                    data_dir,
                    role,
                    name,
                },
        } => create_key(&data_dir, &role, &name),
        Command::CheckConfig { file } => check_config(&file),
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

fn create_key(data_dir: &Path, role: &str, name: &str) -> anyhow::Result<()> {
    let role = tidings::api::keys::validate_new_key(name, role).map_err(anyhow::Error::msg)?;
    let store = tidings::store::Store::open(data_dir)?;
    let (key, secret) = tidings::api::keys::mint(store.default_workspace(), name.trim(), role);
    store.insert_api_key(key)?;
    println!("{}", secret.expose());
    Ok(())
}

fn check_config(file: &Path) -> anyhow::Result<()> {
    let config = Config::load(Some(file), std::env::vars(), &Overrides::default())?;
    println!("# {} is valid. Effective settings:", file.display());
    print!("{}", config.to_toml());
    Ok(())
}
