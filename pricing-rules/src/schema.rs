//! JSON Schemas for the rules files, generated from the types the loader reads, so an editor can check finance's
//! edits as they type (e.g. with a `#:schema ./schema/alloys.schema.json` line at the top of a file).

use crate::files;

/// (file name of the schema, schema as pretty JSON) for every rules file.
pub fn schemas() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |toml: &str, schema: schemars::Schema| {
        let name = toml.replace(".toml", ".schema.json");
        let text = serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n";
        out.push((name, text));
    };
    add("metals.toml", schemars::schema_for!(files::MetalsFile));
    add("alloys.toml", schemars::schema_for!(files::AlloysFile));
    add("labour.toml", schemars::schema_for!(files::LabourFile));
    add("segments.toml", schemars::schema_for!(files::SegmentsFile));
    add("stones.toml", schemars::schema_for!(files::StonesFile));
    add("tax.toml", schemars::schema_for!(files::TaxFile));
    add("casting.toml", schemars::schema_for!(files::CastingFile));
    out
}
