//! The stack file holds the project's secrets; the client reads only its
//! three fields. (Here, not in the core's `src/`: the core's sources must not
//! even name those secrets — CI greps for them.)

use quire_core::Config;

#[test]
fn the_stack_file_yields_only_the_three_client_fields() {
    let stack = r#"{"api_url":"http://127.0.0.1:54321","anon_key":"a","service_role_key":"SERVICE",
        "jwt_secret":"SECRET","db_url":"postgres://x","companion_url":"http://127.0.0.1:54380",
        "agent_id":"ag","knowledge_base_id":"kb","demo_users":[{"email":"e","password":"p"}]}"#;
    let config = Config::from_sources(None, |_| None, Some(stack)).unwrap();
    assert_eq!(config.api_base(), "http://127.0.0.1:54321");
    assert_eq!(config.anon_key, "a");
    assert_eq!(config.companion_base(), "http://127.0.0.1:54380");
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("SERVICE") && !shown.contains("SECRET"),
        "{shown}"
    );
    assert!(
        !shown.contains("\"a\""),
        "the anon key is not printed: {shown}"
    );
}

#[test]
fn the_core_sources_never_name_the_project_secrets() {
    let root = quire_testkit::repo_root();
    let mut stack = vec![root.join("crates/core/src"), root.join("crates/cli/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for name in [concat!("service_role", "_key"), concat!("jwt", "_secret")] {
                    assert!(!text.contains(name), "{} names {name}", path.display());
                }
                for route in ["/api/agents", "/api/sources", "/api/knowledge-bases"] {
                    assert!(
                        !text.contains(route) || path.ends_with("lib.rs"),
                        "{} calls {route}",
                        path.display()
                    );
                }
            }
        }
    }
}
