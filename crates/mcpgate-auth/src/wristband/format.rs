//! The two wristband claim layouts, read and written: the seed's `allowed-tools` (a JSON
//! *string* `{"<client id>":["tool",...]}`) and the newer `allowed-capabilities`
//! (`{"tools":{...},"prompts":{...},"resources":{...}}`). Names are unprefixed; keys are
//! client ids. Never guesses: a missing or mistyped claim is an error, not "everything".

use serde_json::{Map, Value};

use crate::config::WristbandFormat;
use crate::policy::{Grants, Kind};

const SECTIONS: [(&str, Kind); 3] = [("tools", Kind::Tool), ("prompts", Kind::Prompt), ("resources", Kind::Resource)];

/// Reads the grants (keyed by client id) from verified wristband claims.
pub(crate) fn read(format: WristbandFormat, claims: &Map<String, Value>) -> Result<Grants, &'static str> {
    let claim = claims.get(format.claim()).ok_or("the permissions claim is missing")?;
    let mut grants = Grants::new();
    match format {
        WristbandFormat::Tools => {
            let parsed;
            let map = match claim {
                Value::String(s) => {
                    parsed = serde_json::from_str::<Value>(s).map_err(|_| "allowed-tools is not a JSON object string")?;
                    parsed.as_object().ok_or("allowed-tools is not a JSON object string")?
                }
                Value::Object(m) => m,
                _ => return Err("allowed-tools is neither a JSON string nor an object"),
            };
            read_section(map, Kind::Tool, &mut grants)?;
        }
        WristbandFormat::Capabilities => {
            let map = claim.as_object().ok_or("allowed-capabilities is not an object")?;
            for (section, kind) in SECTIONS {
                match map.get(section) {
                    None => {}
                    Some(Value::Object(m)) => read_section(m, kind, &mut grants)?,
                    Some(_) => return Err("an allowed-capabilities section is not an object"),
                }
            }
        }
    }
    Ok(grants)
}

fn read_section(map: &Map<String, Value>, kind: Kind, grants: &mut Grants) -> Result<(), &'static str> {
    for (client, names) in map {
        let names = names.as_array().ok_or("a wristband entry is not a list of names")?;
        for name in names {
            grants.insert(client, kind, name.as_str().ok_or("a wristband name is not a string")?);
        }
    }
    Ok(())
}

/// The permissions claim (name and value) for issuing `grants` in `format`. The tools
/// format carries tools only, as the seed does.
pub(crate) fn write(format: WristbandFormat, grants: &Grants) -> (&'static str, Value) {
    let section = |kind: Kind| -> Map<String, Value> {
        grants
            .servers()
            .filter_map(|client| {
                let names: Vec<Value> = grants.names(client, kind).map(Value::from).collect();
                (!names.is_empty()).then(|| (client.to_owned(), Value::Array(names)))
            })
            .collect()
    };
    match format {
        WristbandFormat::Tools => (format.claim(), Value::String(Value::Object(section(Kind::Tool)).to_string())),
        WristbandFormat::Capabilities => {
            let mut caps = Map::new();
            for (name, kind) in SECTIONS {
                caps.insert(name.to_owned(), Value::Object(section(kind)));
            }
            (format.claim(), Value::Object(caps))
        }
    }
}
