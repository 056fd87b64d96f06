//! Which properties of which features a caller sees. Internal properties (owner data,
//! GDPR) are seen by administrators on every feature and by a municipality's tokens on
//! that municipality's features only; everyone else sees the public columns. Every
//! representation (GeoJSON, HTML, tiles, history, filters, sorting, ETags) asks this.

use std::borrow::Cow;

use rusqlite::types::Value;

use crate::auth::{Caller, Role};
use crate::store::functions::slug;
use crate::store::{LayerDef, LayerMeta};

/// Whose internal properties a caller sees.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Nobody's: public columns only.
    Public,
    /// Everybody's (administrators).
    All,
    /// Those of features whose municipality column has this value (as a slug).
    Municipality {
        /// Index of the layer's municipality column.
        column: usize,
        /// The token's municipality, as a slug.
        slug: String,
    },
}

/// The columns a caller sees, per feature.
#[derive(Debug, Clone)]
pub struct Audience {
    /// What every reader of the layer sees.
    public: Vec<bool>,
    /// Public plus internal columns.
    full: Vec<bool>,
    /// Whose features show `full`.
    pub scope: Scope,
}

impl Audience {
    /// The audience of `who` for a layer.
    pub fn of(who: &Caller, def: &LayerDef, meta: &LayerMeta) -> Audience {
        let internal = |name: &str| meta.internal_properties.iter().any(|p| p == name);
        let public: Vec<bool> = def.columns.iter().map(|c| !internal(&c.name)).collect();
        let full = vec![true; def.columns.len()];
        let scope = match who {
            _ if public.iter().all(|p| *p) => Scope::Public,
            Caller::Token(t) if t.role == Role::Admin => Scope::All,
            Caller::Token(t) if who.covers(&def.table) => {
                let column = meta
                    .municipality_column
                    .as_ref()
                    .and_then(|m| def.columns.iter().position(|c| &c.name == m));
                match (column, &t.municipality) {
                    (Some(column), Some(m)) => Scope::Municipality {
                        column,
                        slug: slug(m),
                    },
                    _ => Scope::Public,
                }
            }
            _ => Scope::Public,
        };
        Audience {
            public,
            full,
            scope,
        }
    }

    /// What anyone who may read the layer sees: the public columns.
    pub fn public(def: &LayerDef, meta: &LayerMeta) -> Audience {
        Audience::of(&Caller::Anonymous, def, meta)
    }

    /// Every column of every feature (rules, exports, the store's own checks).
    pub fn everything(columns: usize) -> Audience {
        Audience {
            public: vec![true; columns],
            full: vec![true; columns],
            scope: Scope::All,
        }
    }

    /// The columns the caller sees on at least one feature: what it may name in
    /// filters, sorting and property parameters, and what schemas list.
    pub fn columns(&self) -> &[bool] {
        match self.scope {
            Scope::Public => &self.public,
            _ => &self.full,
        }
    }

    /// Whether the caller sees internal properties on some features and not on others.
    pub fn partial(&self) -> bool {
        matches!(self.scope, Scope::Municipality { .. })
    }

    /// Whether the caller sees the internal properties of a feature with these values.
    pub fn sees_internal(&self, values: &[Value]) -> bool {
        match &self.scope {
            Scope::Public => false,
            Scope::All => true,
            Scope::Municipality { column, slug: mine } => match values.get(*column) {
                Some(Value::Text(t)) => slug(t) == *mine,
                _ => false,
            },
        }
    }

    /// Whether column `c` is shown on every feature (so no feature need be looked at).
    pub fn always_shows(&self, c: usize) -> bool {
        self.public.get(c).copied().unwrap_or(false)
    }

    /// The columns shown for one feature.
    pub fn mask(&self, values: &[Value]) -> &[bool] {
        if self.sees_internal(values) {
            &self.full
        } else {
            &self.public
        }
    }

    /// Whether showing a feature with these values shows internal properties (the
    /// response is then recorded in the access log).
    pub fn exposes(&self, values: &[Value]) -> bool {
        self.has_internal() && self.sees_internal(values)
    }

    /// Whether the layer has internal properties at all.
    pub fn has_internal(&self) -> bool {
        self.public.iter().any(|p| !p)
    }

    /// A feature's values as this caller may use them (hidden ones read as NULL), for
    /// filtering and sorting: nothing about a hidden value can be inferred from which
    /// features match or how they are ordered.
    pub fn values<'a>(&self, values: &'a [Value]) -> Cow<'a, [Value]> {
        if !self.partial() || self.sees_internal(values) {
            return Cow::Borrowed(values);
        }
        Cow::Owned(
            values
                .iter()
                .zip(&self.public)
                .map(|(v, p)| if *p { v.clone() } else { Value::Null })
                .collect(),
        )
    }
}
