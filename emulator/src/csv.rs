//! CSV results for `ResultFormat: CSV`, read with GetStatementResultV2
//! (https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_GetStatementResultV2.html,
//! https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_QueryRecords.html).
//!
//! AWS says only that `CSVRecords` holds "the results of the SQL statement in CSV format". The
//! quoting follows RFC 4180 (https://www.rfc-editor.org/rfc/rfc4180): a field holding a comma, a
//! double quote, CR or LF is enclosed in double quotes, and a double quote inside it is doubled;
//! records are separated by "\n" (no line break after the last one). Not documented by AWS, so
//! assumed here:
//! - there is no header line (ColumnMetadata names the columns);
//! - SQL NULL is an empty, unquoted field, and an empty string is `""`, so the two differ;
//! - a boolean is `true` or `false`, a number its decimal text as the JSON format gives it.

use serde_json::Value;

/// One page of rows, each a list of Data API `Field`s (see `pg::record`), as CSV text.
pub fn records(rows: &[Vec<Value>]) -> String {
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for (j, field) in row.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            push_field(&mut out, field);
        }
    }
    out
}

fn push_field(out: &mut String, field: &Value) {
    if let Some(text) = field.get("stringValue").and_then(Value::as_str) {
        if text.is_empty() || text.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&text.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(text);
        }
    } else if let Some(b) = field.get("booleanValue").and_then(Value::as_bool) {
        out.push_str(if b { "true" } else { "false" });
    } else if let Some(n) = field.get("longValue").or_else(|| field.get("doubleValue")) {
        out.push_str(&n.to_string());
    }
    // isNull: an empty field.
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn rfc_4180_quoting_null_and_empty_differ() {
        let rows = vec![
            vec![
                json!({"isNull": true}),
                json!({"stringValue": ""}),
                json!({"stringValue": "a,b \"c\"\nd\re"}),
                json!({"longValue": -42}),
                json!({"doubleValue": 1.5}),
                json!({"booleanValue": true}),
            ],
            vec![
                json!({"stringValue": "plain"}),
                json!({"stringValue": " spaced "}),
                json!({"stringValue": "é"}),
                json!({"longValue": 7}),
                json!({"doubleValue": 0.25}),
                json!({"booleanValue": false}),
            ],
        ];
        assert_eq!(super::records(&rows), ",\"\",\"a,b \"\"c\"\"\nd\re\",-42,1.5,true\nplain, spaced ,é,7,0.25,false");
        assert_eq!(super::records(&[]), "");
    }
}
