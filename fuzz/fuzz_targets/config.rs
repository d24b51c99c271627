//! The config loader, YAML text → `${VAR}` substitution → typed tree → validation, on any text.
//!
//! Properties:
//! - Nothing panics; a refusal is a non-empty list of problems, each naming a key path, what
//!   is wrong and a fix.
//! - A value that came from the environment never appears in a problem (environment variables
//!   are where secrets come from; `mcpgate check` prints problems and logs keep them).
//! - An accepted config validates again unchanged, and the runtime machinery builds from it
//!   (auth, permissions, credentials): `check` accepting a config the gateway then refuses at
//!   start-up would be a lie. (Configs naming files are not built: the fuzzer must not read
//!   arbitrary files.)
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcpgate_gateway::config::{ConfigError, parse_str, validate};
use mcpgate_gateway::identity::Security;

/// What every `${VAR}` expands to, except `${UNSET}`.
const FROM_ENV: &str = "env-value-7f3a9";

fn lookup(name: &str) -> Option<String> {
    (name != "UNSET").then(|| FROM_ENV.to_owned())
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_str(text, &lookup) {
        Err(ConfigError::Invalid(problems)) => {
            assert!(!problems.is_empty(), "a refusal without a problem");
            for p in &problems {
                assert!(!p.path.is_empty() && !p.problem.is_empty() && !p.fix.is_empty(), "incomplete problem: {p:?}");
                assert!(!p.to_string().contains(FROM_ENV), "a problem shows a value from the environment: {p}");
            }
        }
        Err(e @ ConfigError::Read { .. }) => panic!("parse_str cannot fail to read: {e}"),
        Ok(config) => {
            assert_eq!(validate(&config), Ok(()), "an accepted config no longer validates");
            if text.contains("file") || text.contains("/dev") {
                return;
            }
            let _guard = runtime().enter();
            if let Err(errors) = Security::build(&config, &reqwest::Client::new(), &mcpgate_gateway::observe::Series::default()) {
                panic!("check accepts a config the gateway refuses at start-up: {errors:?}");
            }
        }
    }
});
