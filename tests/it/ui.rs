
#[test]
fn what_people_type_is_shown_as_text_never_as_markup() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let evil = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";
    let rule = app.create_rule_with(json!({
        "name": evil, "description": evil,
        "trigger": {"type": "event", "events": ["member:*"]},
        "webhook": {"url": "http://127.0.0.1:9/hook", "headers": {"X-Note": evil}},
    }));
    let id = rule["id"].as_str().unwrap();
    for path in ["/rules".to_owned(), format!("/rules/{id}"), format!("/rules/{id}/edit"), "/deliveries".to_owned()] {
        let page = admin.get(&path);
        page.assert_status(200);
        assert!(!page.text.contains("<script>alert"), "{path}");
        assert!(!page.text.contains("<img src=x"), "{path}");
    }
    let page = admin.get(&format!("/rules/{id}"));
    assert!(page.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", page.text);
}

#[test]
fn user_add_reads_the_password_from_standard_input() {
    use std::io::Write;
    use std::process::Stdio;
    let scratch = crate::support::process::Scratch::new("user-add-stdin");
    let data = scratch.path("data");
    let mut cmd = crate::support::process::tidings();
    cmd.args(["user", "add", "--data-dir"])
        .arg(&data)
        .args(["--username", "frank", "--role", "viewer"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let store = tidings::store::Store::open(&data).unwrap();
    let user = store.user_by_name("frank").unwrap().unwrap();
    assert_eq!(user.role, UserRole::Viewer);
    assert!(tidings::security::passwords::verify_password(PASSWORD, &user.password_hash));
    assert!(!tidings::security::passwords::verify_password(&format!("{PASSWORD}\n"), &user.password_hash), "the newline is not part of it");
}
