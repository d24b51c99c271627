//! Permissions from claims and CEL rules: who sees what, why, and when two callers may
//! share a cached list.

use serde_json::{Value, json};

use crate::{ItemRef, Kind, PermissionsConfig, Policy, ServerAuthInfo, VerifiedIdentity};

fn servers() -> Vec<ServerAuthInfo> {
    vec![
        ServerAuthInfo::new("codereview", Some("http://codereview.local/mcp"), None),
        ServerAuthInfo::new("github", Some("https://github.mcp.local/mcp"), None),
        ServerAuthInfo::new("weather", Some("http://weather.local:9000/mcp"), None),
    ]
}

/// (server, tool, annotations) of a small catalog.
fn catalog() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("codereview", "analyze_pr", json!({ "readOnlyHint": true })),
        ("codereview", "suggest_fix", json!({})),
        ("codereview", "merge_pr", json!({ "destructiveHint": true })),
        ("github", "list_repos", json!({ "readOnlyHint": true })),
        ("github", "delete_repo", json!({ "destructiveHint": true })),
        ("weather", "get_forecast", json!({ "readOnlyHint": true })),
    ]
}

fn policy(yaml: &str) -> Policy {
    let cfg: PermissionsConfig = yaml_serde::from_str(yaml).expect("permissions parse");
    Policy::compile(&cfg, &servers()).expect("policy compiles")
}

fn alice() -> VerifiedIdentity {
    VerifiedIdentity::for_tests(
        "alice",
        json!({
            "preferred_username": "alice",
            "department": "eng",
            "email": "alice@example.com",
            "resource_access": {
                "codereview.local": { "roles": ["analyze_pr", "suggest_fix"] },
                "github.mcp.local": { "roles": ["list_repos"] },
                "weather.local": { "roles": ["get_forecast"] },
                "account": { "roles": ["manage-account"] }
            }
        }),
    )
}

fn bob() -> VerifiedIdentity {
    VerifiedIdentity::for_tests("bob", json!({ "preferred_username": "bob", "department": "sales" }))
}

fn tool<'a>(server: &'a str, name: &'a str, annotations: Option<&'a Value>) -> ItemRef<'a> {
    ItemRef { server, kind: Kind::Tool, name, annotations }
}

fn visible(policy: &Policy, identity: Option<&VerifiedIdentity>) -> Vec<String> {
    let caller = policy.caller(identity, &http::HeaderMap::new());
    catalog().iter().filter(|(s, n, a)| caller.decide(&tool(s, n, Some(a))).allowed).map(|(s, n, _)| format!("{s}/{n}")).collect()
}

#[test]
fn alice_sees_exactly_her_four_tools_from_keycloak_roles() {
    let p = policy("{}");
    assert_eq!(visible(&p, Some(&alice())), ["codereview/analyze_pr", "codereview/suggest_fix", "github/list_repos", "weather/get_forecast"]);
    let d = p.caller(Some(&alice()), &http::HeaderMap::new()).decide(&tool("weather", "get_forecast", None));
    assert_eq!((d.allowed, d.reason), (true, "claim_role"));
}

#[test]
fn bob_without_resource_access_sees_nothing() {
    let p = policy("{}");
    assert!(visible(&p, Some(&bob())).is_empty());
    let d = p.caller(Some(&bob()), &http::HeaderMap::new()).decide(&tool("weather", "get_forecast", None));
    assert_eq!((d.allowed, d.reason), (false, "no_claim"));
}

#[test]
fn no_identity_sees_nothing() {
    let p = policy("{}");
    assert!(visible(&p, None).is_empty());
    let d = p.caller(None, &http::HeaderMap::new()).decide(&tool("weather", "get_forecast", None));
    assert_eq!(d.reason, "no_identity");
}

#[test]
fn a_role_for_another_server_or_name_grants_nothing_there() {
    let caller = policy("{}").caller(Some(&alice()), &http::HeaderMap::new());
    assert!(!caller.decide(&tool("github", "analyze_pr", None)).allowed);
    assert!(!caller.decide(&tool("unknown-server", "analyze_pr", None)).allowed);
    assert_eq!(caller.decide(&tool("github", "delete_repo", None)).reason, "not_granted");
}

#[test]
fn on_missing_allow_all_lets_callers_without_the_claim_through() {
    let p = policy("sources: [{claims: {on_missing: allow_all}}]");
    assert_eq!(visible(&p, Some(&bob())).len(), catalog().len());
    let d = p.caller(None, &http::HeaderMap::new()).decide(&tool("github", "delete_repo", None));
    assert_eq!((d.allowed, d.reason), (true, "claims_allow_all"));
    // Alice has the claim, so she still gets only her roles.
    assert_eq!(visible(&p, Some(&alice())).len(), 4);
}

#[test]
fn prompts_and_resources_need_typed_roles() {
    let id = VerifiedIdentity::for_tests(
        "carol",
        json!({ "resource_access": { "weather": { "roles": ["get_forecast", "prompt:daily_brief", "resource:weather://stations"] } } }),
    );
    let caller = policy("{}").caller(Some(&id), &http::HeaderMap::new());
    let item = |kind, name| ItemRef { server: "weather", kind, name, annotations: None };
    assert!(caller.decide(&item(Kind::Tool, "get_forecast")).allowed);
    assert!(!caller.decide(&item(Kind::Prompt, "get_forecast")).allowed);
    assert!(caller.decide(&item(Kind::Prompt, "daily_brief")).allowed);
    assert!(caller.decide(&item(Kind::Resource, "weather://stations")).allowed);
    assert!(!caller.decide(&item(Kind::Tool, "daily_brief")).allowed);
}

#[test]
fn flat_claim_paths_name_the_client_in_each_value() {
    let p = policy("sources: [{claims: {path: scope, prefix: 'mcp:'}}]");
    let id = VerifiedIdentity::for_tests("dan", json!({ "scope": "openid mcp:weather.local/get_forecast mcp:nope/x weather/other" }));
    assert_eq!(visible(&p, Some(&id)), ["weather/get_forecast"]);
}

#[test]
fn client_ids_can_be_configured_per_server() {
    let cfg: crate::ServerAuthConfig = yaml_serde::from_str("client_ids: [wx-client]").expect("parse");
    let servers = vec![ServerAuthInfo::new("weather", Some("http://weather.local"), Some(&cfg))];
    assert_eq!(servers[0].client_ids, ["wx-client"]);
    let p = Policy::compile(&PermissionsConfig::default(), &servers).expect("compiles");
    let id =
        VerifiedIdentity::for_tests("e", json!({ "resource_access": { "wx-client": { "roles": ["get_forecast"] }, "weather.local": { "roles": ["x"] } } }));
    let caller = p.caller(Some(&id), &http::HeaderMap::new());
    assert!(caller.decide(&tool("weather", "get_forecast", None)).allowed);
    assert!(!caller.decide(&tool("weather", "x", None)).allowed);
}

const CEL: &str = r#"
sources:
  - claims: {}
  - cel:
      rules:
        - name: eng-read-only
          effect: allow
          expr: 'claims.department == "eng" && annotations.readOnlyHint == true'
        - name: sales-forecast
          effect: allow
          expr: 'claims.department == "sales" && server == "weather" && kind == "tool"'
        - name: no-destructive
          effect: deny
          expr: 'has(annotations.destructiveHint) && annotations.destructiveHint'
"#;

#[test]
fn cel_allow_rules_grant_by_claims_and_annotations() {
    let p = policy(CEL);
    assert_eq!(visible(&p, Some(&bob())), ["weather/get_forecast"]);
    let carol = VerifiedIdentity::for_tests("carol", json!({ "department": "eng" }));
    assert_eq!(visible(&p, Some(&carol)), ["codereview/analyze_pr", "github/list_repos", "weather/get_forecast"]);
    let d = p.caller(Some(&carol), &http::HeaderMap::new()).decide(&tool("github", "list_repos", Some(&json!({ "readOnlyHint": true }))));
    assert_eq!((d.allowed, d.reason, d.rule.as_deref()), (true, "cel_allow", Some("eng-read-only")));
    assert_eq!(d.to_string(), "cel_allow:eng-read-only");
}

#[test]
fn cel_deny_rule_wins_over_a_claim_role() {
    let id = VerifiedIdentity::for_tests("root", json!({ "resource_access": { "github": { "roles": ["delete_repo"] } } }));
    let d = policy(CEL).caller(Some(&id), &http::HeaderMap::new()).decide(&tool("github", "delete_repo", Some(&json!({ "destructiveHint": true }))));
    assert_eq!((d.allowed, d.reason), (false, "cel_deny"));
    assert_eq!(d.to_string(), "cel_deny:no-destructive");
}

#[test]
fn cel_allow_rules_do_not_apply_without_an_identity() {
    let p = policy("sources: [{cel: {rules: [{name: everyone, effect: allow, expr: 'true'}]}}]");
    assert!(visible(&p, None).is_empty());
    assert_eq!(visible(&p, Some(&bob())).len(), catalog().len());
}

#[test]
fn a_cel_deny_rule_that_fails_to_evaluate_denies() {
    let p = policy("sources: [{claims: {}}, {cel: {rules: [{name: by-level, effect: deny, expr: 'claims.level > 3'}]}}]");
    let d = p.caller(Some(&alice()), &http::HeaderMap::new()).decide(&tool("weather", "get_forecast", None));
    assert_eq!((d.allowed, d.reason, d.rule.as_deref()), (false, "cel_error", Some("by-level")));
}

#[test]
fn cel_compile_errors_name_the_rule() {
    let cfg: PermissionsConfig = yaml_serde::from_str(
        "sources: [{claims: {}}, {cel: {rules: [{name: ok, effect: allow, expr: 'true'}, {name: broken, effect: deny, expr: 'claims.x ==' }, {name: typo, effect: allow, expr: 'claim.x == 1'}]}}]",
    )
    .expect("parse");
    let errors = Policy::compile(&cfg, &servers()).expect_err("compile errors");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("auth.permissions.sources[1].rules[1] (broken): "), "{errors:?}");
    assert!(errors[1].starts_with("auth.permissions.sources[1].rules[2] (typo): unknown variable(s) claim"), "{errors:?}");
}

#[test]
fn comprehension_variables_are_not_unknown() {
    let p = policy("sources: [{cel: {rules: [{name: admins, effect: allow, expr: 'claims.groups.exists(g, g == \"admin\")'}]}}]");
    let admin = VerifiedIdentity::for_tests("adm", json!({ "groups": ["dev", "admin"] }));
    assert_eq!(visible(&p, Some(&admin)).len(), catalog().len());
}

#[test]
fn fingerprint_is_equal_for_equal_grants_and_differs_otherwise() {
    let p = policy("{}");
    let h = http::HeaderMap::new();
    let alice2 = VerifiedIdentity::for_tests("alice-other-session", alice().claims.as_ref().clone().into());
    assert_eq!(p.caller(Some(&alice()), &h).fingerprint(), p.caller(Some(&alice2), &h).fingerprint());
    assert_ne!(p.caller(Some(&alice()), &h).fingerprint(), p.caller(Some(&bob()), &h).fingerprint());
    let fewer = VerifiedIdentity::for_tests("f", json!({ "resource_access": { "weather": { "roles": ["get_forecast"] } } }));
    assert_ne!(p.caller(Some(&alice()), &h).fingerprint(), p.caller(Some(&fewer), &h).fingerprint());
    assert_ne!(p.caller(None, &h).fingerprint(), p.caller(Some(&bob()), &h).fingerprint());
}

#[test]
fn fingerprint_includes_only_the_claims_cel_rules_read() {
    let p = policy(CEL);
    let h = http::HeaderMap::new();
    let eng = |email: &str, dept: &str| VerifiedIdentity::for_tests(email, json!({ "department": dept, "email": email }));
    assert_eq!(p.caller(Some(&eng("a@x", "eng")), &h).fingerprint(), p.caller(Some(&eng("b@x", "eng")), &h).fingerprint());
    assert_ne!(p.caller(Some(&eng("a@x", "eng")), &h).fingerprint(), p.caller(Some(&eng("c@x", "sales")), &h).fingerprint());
}

#[test]
fn callers_are_computed_once_per_token() {
    let p = policy("{}");
    let h = http::HeaderMap::new();
    let a = p.caller(Some(&alice()), &h);
    let b = p.caller(Some(&alice()), &h);
    assert!(std::sync::Arc::ptr_eq(&a, &b));
}

#[test]
fn the_example_config_loads_and_compiles() {
    let cfg: crate::AuthConfig = yaml_serde::from_str(include_str!("../../tests/config/auth.yaml")).expect("example parses");
    assert!(crate::Authenticator::new(&cfg, crate::default_http_client().expect("client")).is_ok());
    assert!(Policy::compile(&cfg.permissions, &servers()).is_ok());
    let issuer = crate::WristbandIssuer::new(cfg.wristband_issue.as_ref().expect("issue config")).expect("issuer");
    assert_eq!(issuer.header_name(), "x-mcp-authorized");
}
