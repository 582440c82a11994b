//! The settings page names the config file in effect: the file the server loaded, or that
//! there was none (defaults and `TIDINGS_*` variables only).

use tidings::config::{Config, NO_FILE, Overrides};

use crate::support::app::{spawn_app, start, temp_dir};
use crate::support::ui::setup_admin;

#[test]
fn the_settings_page_names_the_config_file_that_was_loaded() {
    let dir = temp_dir("settings-source");
    let data = dir.join("data");
    let file = dir.join("clinic.toml");
    std::fs::write(
        &file,
        format!(
            "mode = \"development\"\ndata_dir = {:?}\n[retry]\nmax_attempts = 4\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let config = Config::load(Some(&file), std::iter::empty(), &Overrides::default()).unwrap();
    let app = start(config);
    let admin = setup_admin(&app, "anna");
    let page = admin.get("/settings");
    page.assert_status(200);
    let shown = page.by_id("config-source").expect("the config file line");
    let expected = std::fs::canonicalize(&file).unwrap();
    assert_eq!(shown, expected.display().to_string(), "{}", page.text);
    assert!(
        page.text.contains("max_attempts = 4"),
        "the file's settings"
    );
    app.stop();
    std::fs::remove_dir_all(dir).ok();

    // Started without a file: it says so.
    let app = spawn_app();
    let page = setup_admin(&app, "anna").get("/settings");
    assert_eq!(page.by_id("config-source").as_deref(), Some(NO_FILE));
}
