//! The real `tidings` binary as an operator runs it (SPEC §7, §9): `--help`, `key create`,
//! `check-config`, `serve` modes, flag/env/file precedence and the master key.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::support::app::wait_until;
use crate::support::process::*;

// ---------------------------------------------------------------------------
// --help and key create
// ---------------------------------------------------------------------------

#[test]
fn help_lists_serve_key_and_check_config() {
    let mut cmd = tidings();
    cmd.arg("--help");
    let ran = run(cmd);
    assert!(ran.success(), "{ran:?}");
    for command in ["serve", "key", "check-config"] {
        assert!(
            ran.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(command)),
            "--help does not list `{command}`:\n{}",
            ran.stdout
        );
    }
}

#[test]
fn key_create_prints_only_the_key_and_admin_and_ingest_keys_work_against_serve() {
    let scratch = Scratch::new("cli-keys");
    let data = scratch.path("data");
    let mut cmd = tidings();
    cmd.arg("key")
        .arg("create")
        .arg("--data-dir")
        .arg(&data)
        .args(["--role", "admin", "--name", "ops laptop"]);
    let ran = run(cmd);
    assert!(ran.success(), "{ran:?}");
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout must hold the key alone: {:?}",
        ran.stdout
    );
    let admin = lines[0];
    assert!(
        admin.starts_with("tdk_"),
        "unexpected key format: {admin:?}"
    );
    assert_eq!(admin, admin.trim(), "no stray whitespace around the key");
    assert!(
        admin.len() >= 40,
        "a key must carry enough randomness: {admin:?}"
    );
    let ingest = create_key(&data, "ingest");
    assert!(ingest.starts_with("tdk_") && ingest != admin);

    let served = Served::start(&data, &["--dev"]);
    let rules = request("GET", &served.url("/api/v1/rules"), Some(admin), None);
    assert_eq!(rules.status, 200, "{}", rules.text);
    assert!(rules.body["data"].is_array(), "{}", rules.text);

    let denied = request("GET", &served.url("/api/v1/rules"), Some(&ingest), None);
    denied.assert_error(403);
    let accepted = request(
        "POST",
        &served.url("/api/v1/events"),
        Some(&ingest),
        Some(&json!({"type": "ping", "data": {}})),
    );
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    assert!(
        accepted.body["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("evt_")),
        "{}",
        accepted.text
    );

    let wrong = request(
        "GET",
        &served.url("/api/v1/rules"),
        Some("tdk_not-a-real-key"),
        None,
    );
    wrong.assert_error(401);
}

#[test]
fn key_create_with_a_bad_role_fails_clearly_and_creates_nothing() {
    let scratch = Scratch::new("cli-badrole");
    let data = scratch.path("data");
    let mut cmd = tidings();
    cmd.arg("key")
        .arg("create")
        .arg("--data-dir")
        .arg(&data)
        .args(["--role", "superuser", "--name", "x"]);
    let ran = run(cmd);
    assert!(!ran.success(), "{ran:?}");
    assert!(
        ran.stdout.trim().is_empty(),
        "no key may be printed: {ran:?}"
    );
    assert!(
        ran.stderr.contains("admin")
            && ran.stderr.contains("ingest")
            && ran.stderr.contains("superuser"),
        "the message should name the bad role and the valid ones: {}",
        ran.stderr
    );
    assert!(
        !data.exists(),
        "a refused command must not create the data dir"
    );
}

// ---------------------------------------------------------------------------
// check-config
// ---------------------------------------------------------------------------

fn check_config(file: &Path, env: &[(&str, &str)]) -> Ran {
    let mut cmd = tidings();
    cmd.arg("check-config").arg(file).envs(env.iter().copied());
    run(cmd)
}

#[test]
fn check_config_accepts_a_valid_file_and_prints_the_effective_settings() {
    let scratch = Scratch::new("cli-check-ok");
    let file = scratch.write(
        "tidings.toml",
        "mode = \"development\"\n[retry]\nmax_attempts = 3\nbase_delay = \"250ms\"\n",
    );
    let ran = check_config(&file, &[]);
    assert!(ran.success(), "{ran:?}");
    let out = &ran.stdout;
    assert!(out.contains("valid"), "{out}");
    // From the file.
    assert!(out.contains("max_attempts = 3"), "{out}");
    assert!(out.contains("base_delay = \"250ms\""), "{out}");
    assert!(out.contains("mode = \"development\""), "{out}");
    // Defaults filled in.
    assert!(out.contains("max_event_bytes = 1048576"), "{out}");
    assert!(out.contains("listen = \"127.0.0.1:8080\""), "{out}");
}

#[test]
fn check_config_output_is_itself_a_valid_config_with_the_same_settings() {
    let scratch = Scratch::new("cli-check-roundtrip");
    let file = scratch.write(
        "tidings.toml",
        "[retry]\nmax_delay = \"90m\"\n[alerts]\ndisable_after = \"3d\"\n[network]\nallow = [\"10.20.0.0/24\"]\n",
    );
    let first = check_config(&file, &[]);
    assert!(first.success(), "{first:?}");
    let effective = scratch.write("effective.toml", &first.stdout);
    let second = check_config(&effective, &[]);
    assert!(
        second.success(),
        "the printed settings do not load again: {second:?}"
    );
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&first.stdout), strip(&second.stdout));
}

#[test]
fn check_config_names_an_unknown_key_in_full() {
    let scratch = Scratch::new("cli-check-unknown");
    let file = scratch.write("tidings.toml", "[retry]\nmax_atempts = 3\n");
    let ran = check_config(&file, &[]);
    assert!(!ran.success(), "{ran:?}");
    assert!(ran.stderr.contains("retry.max_atempts"), "{}", ran.stderr);
    assert!(
        ran.stdout.trim().is_empty(),
        "nothing is 'valid': {}",
        ran.stdout
    );
}

#[test]
fn check_config_explains_a_bad_duration() {
    let scratch = Scratch::new("cli-check-duration");
    let file = scratch.write("tidings.toml", "[retry]\nbase_delay = \"soon\"\n");
    let ran = check_config(&file, &[]);
    assert!(!ran.success(), "{ran:?}");
    assert!(
        ran.stderr.contains("\"soon\""),
        "the bad value should be quoted: {}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("10s"),
        "an example of the format should be given: {}",
        ran.stderr
    );
}

#[test]
fn check_config_names_the_key_of_a_bad_duration() {
    let scratch = Scratch::new("cli-check-duration-key");
    let file = scratch.write("tidings.toml", "[retry]\nbase_delay = \"soon\"\n");
    let ran = check_config(&file, &[]);
    assert!(!ran.success(), "{ran:?}");
    assert!(ran.stderr.contains("retry.base_delay"), "{}", ran.stderr);
}

#[test]
fn check_config_names_a_bad_environment_variable() {
    let scratch = Scratch::new("cli-check-env");
    let file = scratch.write("tidings.toml", "[retry]\nmax_attempts = 3\n");
    let ran = check_config(&file, &[("TIDINGS_RETRY_MAX_ATTEMPTS", "abc")]);
    assert!(!ran.success(), "{ran:?}");
    assert!(
        ran.stderr.contains("TIDINGS_RETRY_MAX_ATTEMPTS"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("abc"), "{}", ran.stderr);

    // A good value from the environment beats the file.
    let ran = check_config(&file, &[("TIDINGS_RETRY_MAX_ATTEMPTS", "8")]);
    assert!(ran.success(), "{ran:?}");
    assert!(ran.stdout.contains("max_attempts = 8"), "{}", ran.stdout);
}

// ---------------------------------------------------------------------------
// serve: modes, precedence, master key
// ---------------------------------------------------------------------------

/// Waits until the serve log contains `needle` (case-insensitive) and returns the log.
fn wait_for_log(served: &Served, needle: &str) -> String {
    let needle = needle.to_lowercase();
    wait_until(
        Duration::from_secs(10),
        &format!("{needle:?} in the serve log"),
        || {
            let log = served.log();
            log.to_lowercase().contains(&needle).then_some(log)
        },
    )
}

#[test]
fn serve_with_dev_logs_that_it_runs_in_development_mode() {
    let scratch = Scratch::new("cli-dev");
    let served = Served::start(&scratch.path("data"), &["--dev"]);
    let log = wait_for_log(&served, "development");
    assert!(!log.to_lowercase().contains("production mode"), "{log}");
}

#[test]
fn serve_without_dev_logs_that_it_runs_in_production_mode() {
    let scratch = Scratch::new("cli-prod");
    let served = Served::start(&scratch.path("data"), &[]);
    let log = wait_for_log(&served, "production mode");
    assert!(!log.to_lowercase().contains("development mode"), "{log}");
}

#[test]
fn serve_logs_have_no_colour_codes_when_stdout_is_not_a_terminal() {
    let scratch = Scratch::new("cli-ansi");
    let served = Served::start(&scratch.path("data"), &["--dev"]);
    let log = wait_for_log(&served, "development");
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in a non-terminal log: {log:?}"
    );
}

#[test]
fn serve_flags_win_over_environment_and_environment_over_file() {
    let scratch = Scratch::new("cli-precedence");
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let data = scratch.path("data");
    let config = scratch.write(
        "tidings.toml",
        &format!("listen = \"127.0.0.1:{file_port}\"\nmode = \"production\"\ndata_dir = \"/nonexistent/never\"\n"),
    );
    let config = config.to_str().unwrap();
    let data_arg = data.to_str().unwrap();
    let env_listen = format!("127.0.0.1:{env_port}");
    let flag_listen = format!("127.0.0.1:{flag_port}");

    // File < env < flag: the flag's port answers, --dev beats the file's mode, --data-dir its dir.
    let mut served = Served::spawn_raw(
        &[
            "--config",
            config,
            "--data-dir",
            data_arg,
            "--listen",
            &flag_listen,
            "--dev",
        ],
        flag_port,
        &data,
        &[("TIDINGS_LISTEN", &env_listen)],
    );
    served.wait_healthy();
    wait_for_log(&served, "development");
    assert!(!answers(file_port), "the file's port must not be used");
    assert!(
        !answers(env_port),
        "the environment's port must not be used"
    );
    assert!(
        data.join("tidings.redb").exists(),
        "--data-dir must beat the file's data_dir"
    );
    served.kill9();

    // File < env: without the flag, the environment's port answers.
    let mut served = Served::spawn_raw(
        &["--config", config, "--data-dir", data_arg],
        env_port,
        &data,
        &[("TIDINGS_LISTEN", &env_listen)],
    );
    served.wait_healthy();
    wait_for_log(&served, "production mode");
    assert!(!answers(file_port), "the file's port must not be used");
}

#[test]
fn serve_refuses_a_bad_master_key_naming_tidings_master_key() {
    let scratch = Scratch::new("cli-badmaster");
    let data = scratch.path("data");
    let mut served = Served::spawn(&data, &["--dev"], &[("TIDINGS_MASTER_KEY", "not-a-key")]);
    let status = served.wait_exit();
    assert!(!status.success(), "serve must refuse to start");
    let log = served.log();
    assert!(log.contains("TIDINGS_MASTER_KEY"), "{log}");
    assert!(
        !log.contains("not-a-key"),
        "the bad key itself must not be echoed: {log}"
    );
    assert!(
        !data.join("master.key").exists(),
        "no key file may be generated instead"
    );
}

#[test]
fn serve_generates_a_master_key_file_with_mode_0600() {
    let scratch = Scratch::new("cli-master");
    let data = scratch.path("data");
    let served = Served::start(&data, &["--dev"]);
    let key = data.join("master.key");
    assert!(key.is_file(), "no master.key in {}", data.display());
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "master.key has mode {mode:o}");
    let first = std::fs::read(&key).unwrap();
    served.kill9();

    // A restart keeps (does not replace) the key.
    let _served = Served::start(&data, &["--dev"]);
    assert_eq!(
        std::fs::read(&key).unwrap(),
        first,
        "master.key changed on restart"
    );
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn serve_refuses_a_database_whose_master_key_file_is_missing_and_writes_no_new_key() {
    let scratch = Scratch::new("cli-lostkey");
    let data = scratch.path("data");
    let served = Served::start(&data, &["--dev"]);
    served.kill9();
    std::fs::remove_file(data.join("master.key")).unwrap();
    let before = names_in(&data);

    let mut served = Served::spawn(&data, &["--dev"], &[]);
    let status = served.wait_exit();
    assert!(!status.success(), "serve must refuse to start");
    let log = served.log();
    let missing = data.join("master.key");
    assert!(
        log.contains(&missing.display().to_string()) && log.contains("TIDINGS_MASTER_KEY"),
        "the message should name the missing file and TIDINGS_MASTER_KEY: {log}"
    );
    assert!(!missing.exists(), "a new master.key was written");
    assert_eq!(names_in(&data), before, "start-up left files behind");
}

#[test]
fn serve_with_a_good_master_key_in_the_environment_writes_no_key_file() {
    use base64::Engine;
    let scratch = Scratch::new("cli-envmaster");
    let data = scratch.path("data");
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let served = Served::start_with_env(&data, &["--dev"], &[("TIDINGS_MASTER_KEY", &key)]);
    assert!(
        !data.join("master.key").exists(),
        "the key came from the environment"
    );
    let log = served.log();
    assert!(!log.contains(&key), "the master key must never be logged");
}

// ---------------------------------------------------------------------------
// File permissions
// ---------------------------------------------------------------------------

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn the_database_master_key_and_backups_are_0600_under_a_permissive_umask() {
    let scratch = Scratch::new("cli-umask");

    // `key create` on a new data dir creates the database.
    let made_by_key_create = scratch.path("by-key-create");
    let mut cmd = tidings_after("umask 000");
    cmd.args(["key", "create", "--data-dir"])
        .arg(&made_by_key_create)
        .args(["--role", "admin", "--name", "umask"]);
    let ran = run(cmd);
    assert!(ran.success(), "{ran:?}");
    assert_eq!(mode_of(&made_by_key_create.join("tidings.redb")), 0o600);

    // `serve` on a new data dir creates the database and the master key.
    let data = scratch.path("data");
    let mut served = Served::spawn_after("umask 000", &data, &["--dev"], &[]);
    served.wait_healthy();
    assert_eq!(mode_of(&data.join("tidings.redb")), 0o600);
    assert_eq!(mode_of(&data.join("master.key")), 0o600);
    served.kill9();

    // Files an earlier version (or a hand copy) left readable by others are tightened at open.
    let admin = create_key(&data, "admin");
    for name in ["tidings.redb", "master.key"] {
        std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut served = Served::spawn_after("umask 000", &data, &["--dev"], &[]);
    served.wait_healthy();
    assert_eq!(mode_of(&data.join("tidings.redb")), 0o600);
    assert_eq!(mode_of(&data.join("master.key")), 0o600);

    // An online snapshot, in a backups folder only the owner can enter.
    let made = request("POST", &served.url("/api/v1/backup"), Some(&admin), None);
    assert_eq!(made.status, 201, "{}", made.text);
    let snapshot = Path::new(made.body["path"].as_str().unwrap()).to_owned();
    assert_eq!(mode_of(&snapshot), 0o600);
    assert_eq!(mode_of(snapshot.parent().unwrap()), 0o700);
}
