//! What each view of a database reads. A regular view's upstreams are the dependency records
//! Redshift keeps (pg_depend over the view's pg_rewrite rule: the join of AWS's own admin view
//! v_view_dependency, amazon-redshift-utils). Late-binding views have none (r_CREATE_VIEW.html,
//! WITH NO SCHEMA BINDING), a materialized view's point at its internal table, and regular
//! views cannot reach another database (cross-database_limitation.html): those are parsed from
//! their definitions as Redshift SQL. A name that cannot be resolved, or a definition that does
//! not parse, gives no upstream and a note: never a guessed one.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::ops::ControlFlow;

use sqlparser::ast::{Ident, ObjectNamePart, Query, Statement, TableFactor, Visit, Visitor};
use sqlparser::dialect::RedshiftSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::sql;
use super::statement::ReadError;
use crate::catalog::{Dataset, DatasetKind, Upstream, Via};
use crate::ports::Row;

/// Schema and table.
type Key = (String, String);

/// The relations of a database, as 64-bit hashes of (schema, table): enough to tell whether a
/// name exists, at 8 bytes a relation.
#[derive(Default)]
pub(crate) struct Relations(HashSet<u64>);

impl Relations {
    pub(crate) fn insert(&mut self, schema: &str, table: &str) {
        self.0.insert(hash(schema, table));
    }

    fn has(&self, schema: &str, table: &str) -> bool {
        self.0.contains(&hash(schema, table))
    }
}

fn hash(schema: &str, table: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (schema, table).hash(&mut h);
    h.finish()
}

/// What the parser could not do, for the database's notes.
#[derive(Default)]
struct Misses {
    unparsed: Vec<(Key, String)>,
    unresolved: Vec<(Key, String)>,
}

/// Sets the upstreams of every view of `datasets` (external tables have theirs already), and
/// returns the notes on what could not be known.
pub(crate) fn attach(
    database: &str,
    datasets: &mut [Dataset],
    dependencies: &Result<Vec<Row>, ReadError>,
    relations: &Relations,
) -> Vec<String> {
    let mut notes = Vec::new();
    let recorded = match dependencies {
        Ok(rows) => recorded_upstreams(rows),
        Err(e) => {
            notes.push(format!(
                "view dependencies not read ({}): {e}; views have only the upstreams their definitions name",
                e.kind()
            ));
            HashMap::new()
        }
    };
    let mut misses = Misses::default();
    for d in datasets.iter_mut().filter(|d| is_view(d.kind)) {
        let key = (d.schema.clone(), d.name.clone());
        let upstream: BTreeSet<Upstream> = match recorded.get(&key) {
            Some(refs) => refs.iter().map(|(s, t)| Upstream::dataset(database, s, t, Via::Catalog)).collect(),
            None => match &d.view_definition {
                Some(definition) => {
                    let view = View { key: &key, owner: d.owner.as_deref() };
                    from_definition(database, view, definition, relations, &mut misses)
                }
                None => BTreeSet::new(),
            },
        };
        d.upstream = upstream.into_iter().collect();
    }
    notes.extend(misses.notes(database));
    notes
}

fn is_view(kind: DatasetKind) -> bool {
    matches!(kind, DatasetKind::View | DatasetKind::LateBindingView | DatasetKind::MaterializedView)
}

/// The rows of [`sql::VIEW_DEPENDENCIES`] by view. A reference to a materialized view's internal
/// table (`mv_tbl__{name}__0`) is to the materialized view; one to the view itself is dropped.
fn recorded_upstreams(rows: &[Row]) -> HashMap<Key, BTreeSet<Key>> {
    let mut by_view: HashMap<Key, BTreeSet<Key>> = HashMap::new();
    for r in rows {
        let cell = |i: usize| r.get(i).and_then(|c| c.text()).map(str::to_string);
        let (Some(vs), Some(vn), Some(rs), Some(rn)) = (cell(0), cell(1), cell(2), cell(3)) else { continue };
        let rn = sql::materialized_view_of(&rn).unwrap_or(rn);
        if (vs == rs && vn == rn) || sql::is_system_schema(&rs) {
            continue;
        }
        by_view.entry((vs, vn)).or_default().insert((rs, rn));
    }
    by_view
}

/// A view whose definition is resolved: its name, and its owner, whose schema Redshift's default
/// search_path ('$user', public) looks in first.
struct View<'a> {
    key: &'a Key,
    owner: Option<&'a str>,
}

/// The upstreams a definition names, resolved as Redshift would.
fn from_definition(
    database: &str,
    view: View,
    definition: &str,
    relations: &Relations,
    misses: &mut Misses,
) -> BTreeSet<Upstream> {
    let names = match referenced(definition) {
        Ok(names) => names,
        Err(e) => {
            misses.unparsed.push((view.key.clone(), e));
            return BTreeSet::new();
        }
    };
    let mut upstream = BTreeSet::new();
    for parts in names {
        match resolve(database, &parts, relations, view.owner) {
            Some((db, schema, table)) => {
                upstream.insert(Upstream::dataset(&db, &schema, &table, Via::Definition));
            }
            None => {
                let written: Vec<&str> = parts.iter().map(|p| p.value.as_str()).collect();
                misses.unresolved.push((view.key.clone(), written.join(".")));
            }
        }
    }
    upstream
}

/// The relations a view's definition reads, each as its name parts: a query (as
/// information_schema.views gives a regular view), or a CREATE VIEW or CREATE MATERIALIZED
/// VIEW statement (as it gives late-binding and materialized views).
pub(crate) fn referenced(definition: &str) -> Result<BTreeSet<Vec<Ident>>, String> {
    let dialect = RedshiftSqlDialect {};
    let query = match Parser::parse_sql(&dialect, definition) {
        Ok(statements) => match statements.into_iter().next() {
            Some(Statement::Query(query)) => *query,
            Some(Statement::CreateView(view)) => *view.query,
            Some(other) => return Err(format!("not a query: {}", first_words(&other.to_string()))),
            None => return Err("empty".into()),
        },
        // A materialized view's options (BACKUP, DISTKEY, SORTKEY, AUTO REFRESH) come before its
        // AS, where the parser knows none of them: the query after it is parsed alone.
        Err(e) => query_after_as(definition).ok_or_else(|| e.to_string())?,
    };
    let mut names = Names::default();
    let _ = query.visit(&mut names);
    Ok(names.found)
}

fn first_words(text: &str) -> String {
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// The query of a `CREATE ... VIEW name [options] AS query`, parsed from the tokens after
/// its first AS outside parentheses.
fn query_after_as(definition: &str) -> Option<Query> {
    let dialect = RedshiftSqlDialect {};
    let tokens = Tokenizer::new(&dialect, definition).tokenize().ok()?;
    let is = |t: &Token, k: Keyword| matches!(t, Token::Word(w) if w.keyword == k);
    tokens.iter().find(|t| !matches!(t, Token::Whitespace(_))).filter(|t| is(t, Keyword::CREATE))?;
    let mut depth = 0i32;
    let at = tokens.iter().position(|t| {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ => {}
        }
        depth == 0 && is(t, Keyword::AS)
    })?;
    Parser::new(&dialect).with_tokens(tokens[at + 1..].to_vec()).parse_query().ok().map(|q| *q)
}

/// Collects table names, leaving out the CTEs in scope and table functions.
#[derive(Default)]
struct Names {
    ctes: Vec<Vec<String>>,
    found: BTreeSet<Vec<Ident>>,
}

impl Visitor for Names {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let names = query.with.iter().flat_map(|w| &w.cte_tables).map(|c| fold(&c.alias.name)).collect();
        self.ctes.push(names);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.ctes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, args: None, .. } = factor {
            let parts: Option<Vec<Ident>> = name
                .0
                .iter()
                .map(|p| match p {
                    ObjectNamePart::Identifier(i) => Some(i.clone()),
                    ObjectNamePart::Function(_) => None,
                })
                .collect();
            let cte = |parts: &[Ident]| parts.len() == 1 && self.ctes.iter().flatten().any(|c| *c == fold(&parts[0]));
            if let Some(parts) = parts.filter(|p| !cte(p)) {
                self.found.insert(parts);
            }
        }
        ControlFlow::Continue(())
    }
}

/// An identifier as Redshift compares it: folded to lower case unless quoted (r_names.html).
fn fold(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// A name of a definition as database, schema and table. Another database's three-part name is
/// taken as written; this database's must be one of its relations, found as written or (as
/// Redshift folds even quoted names unless enable_case_sensitive_identifier is on) in lower
/// case. An unqualified name is looked up where Redshift's default search_path ('$user',
/// public: r_search_path.html) finds it: the schema named as the view's owner, then public. The
/// search_path a view was created under is not kept in the catalog, so a changed one is not seen.
fn resolve(
    database: &str,
    parts: &[Ident],
    relations: &Relations,
    owner: Option<&str>,
) -> Option<(String, String, String)> {
    let folded: Vec<String> = parts.iter().map(fold).collect();
    let (db, schemas, table) = match folded.as_slice() {
        [db, schema, table] => (db.clone(), vec![schema.clone()], table.clone()),
        [schema, table] => (database.to_string(), vec![schema.clone()], table.clone()),
        [table] => (
            database.to_string(),
            owner.into_iter().map(str::to_string).chain(["public".into()]).collect(),
            table.clone(),
        ),
        _ => return None,
    };
    if db != database {
        return Some((db, schemas.into_iter().next()?, table));
    }
    schemas.into_iter().find_map(|schema| {
        if relations.has(&schema, &table) {
            return Some((db.clone(), schema, table.clone()));
        }
        let (schema, table) = (schema.to_lowercase(), table.to_lowercase());
        relations.has(&schema, &table).then(|| (db.clone(), schema, table))
    })
}

impl Misses {
    fn notes(self, database: &str) -> Vec<String> {
        let list = |items: &[(Key, String)]| {
            items.iter().take(5).map(|((s, v), what)| format!("{s}.{v} ({what})")).collect::<Vec<_>>().join("; ")
        };
        let mut notes = Vec::new();
        if !self.unparsed.is_empty() {
            notes.push(format!(
                "lineage: the definitions of {} views in database {database} could not be parsed, so they have no \
                 upstream from them: {}",
                self.unparsed.len(),
                list(&self.unparsed)
            ));
        }
        if !self.unresolved.is_empty() {
            notes.push(format!(
                "lineage: {} names in view definitions of database {database} are no relation of it, so they are \
                 no upstream: {}",
                self.unresolved.len(),
                list(&self.unresolved)
            ));
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(definition: &str) -> Vec<String> {
        let found = referenced(definition).unwrap();
        found.iter().map(|parts| parts.iter().map(fold).collect::<Vec<_>>().join(".")).collect()
    }

    #[test]
    fn ctes_subqueries_and_table_functions_are_no_upstream() {
        let sql = "WITH recent AS (SELECT * FROM sales.orders WHERE day > GETDATE() - 7), \
                   totals AS (SELECT customer_id, SUM(amount) FROM recent GROUP BY 1) \
                   SELECT t.*, c.name FROM totals t JOIN (SELECT * FROM \"CRM\".\"Customers\") c USING (customer_id) \
                   UNION ALL SELECT 1, 2, x FROM generate_series(1, 3) x";
        assert_eq!(names(sql), ["CRM.Customers", "sales.orders"]);
    }

    #[test]
    fn a_materialized_view_statement_is_read_past_its_options() {
        let sql = "CREATE MATERIALIZED VIEW mart.daily BACKUP NO DISTSTYLE KEY DISTKEY(day) SORTKEY(day) \
                   AUTO REFRESH YES AS SELECT day, COUNT(*) FROM (SELECT DATE_TRUNC('day', ts) AS day FROM events.clicks) \
                   GROUP BY day";
        assert_eq!(names(sql), ["events.clicks"]);
        let late = "create view public.v as select * from spectrum.logs join lake.public.users using (id) \
                    with no schema binding;";
        assert_eq!(names(late), ["lake.public.users", "spectrum.logs"]);
    }

    #[test]
    fn names_resolve_as_redshift_folds_and_searches_them() {
        let mut relations = Relations::default();
        relations.insert("public", "users");
        relations.insert("sales", "orders");
        relations.insert("Ops", "Jobs");
        relations.insert("analyst", "users");
        let as_owner = |sql: &str, owner: Option<&str>| -> Vec<Option<String>> {
            let found = referenced(sql).unwrap();
            found.iter().map(|p| resolve("dev", p, &relations, owner).map(|(d, s, t)| format!("{d}.{s}.{t}"))).collect()
        };
        let resolved = |sql: &str| as_owner(sql, None);
        // '$user' comes before public.
        assert_eq!(as_owner("SELECT * FROM users", Some("analyst")), [Some("dev.analyst.users".into())]);
        assert_eq!(as_owner("SELECT * FROM orders", Some("analyst")), [None]);
        assert_eq!(resolved("SELECT * FROM users"), [Some("dev.public.users".into())]);
        assert_eq!(resolved("SELECT * FROM SALES.Orders"), [Some("dev.sales.orders".into())]);
        assert_eq!(resolved("SELECT * FROM \"Ops\".\"Jobs\""), [Some("dev.Ops.Jobs".into())]);
        assert_eq!(resolved("SELECT * FROM \"SALES\".\"ORDERS\""), [Some("dev.sales.orders".into())]);
        assert_eq!(resolved("SELECT * FROM other_db.s.t"), [Some("other_db.s.t".into())]);
        assert_eq!(resolved("SELECT * FROM nowhere"), [None]);
    }

    #[test]
    fn a_definition_that_does_not_parse_is_an_error_not_an_upstream() {
        assert!(referenced("SELECT FROM WHERE (").is_err());
        assert!(referenced("DROP TABLE x").is_err());
    }
}
