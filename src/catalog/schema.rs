//! The declared raw tables: names, columns and the type family each column must have.
//!
//! Only `sales` is required; every other table enriches the features when present.
//! Types are checked by family (any text type for ids, any numeric type for
//! quantities, a date or timestamp for dates) so files written by DuckDB,
//! pandas or Spark load without conversion.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// The type family a column must belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Date32`, `Date64` or a timestamp.
    Date,
    /// `Utf8`, `LargeUtf8`, `Utf8View` or a dictionary of those.
    Text,
    /// Any integer, float or decimal.
    Number,
}

impl Kind {
    /// Whether `dt` belongs to this family.
    pub fn accepts(self, dt: &DataType) -> bool {
        match (self, dt) {
            (_, DataType::Dictionary(_, v)) => self.accepts(v),
            (Kind::Date, DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)) => true,
            (Kind::Text, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => true,
            (Kind::Number, dt) => dt.is_numeric(),
            _ => false,
        }
    }

    /// The type shelfcast itself writes for this family.
    pub fn canonical(self) -> DataType {
        match self {
            Kind::Date => DataType::Date32,
            Kind::Text => DataType::Utf8,
            Kind::Number => DataType::Float64,
        }
    }

    /// A name for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Date => "a date (Date32, Date64 or Timestamp)",
            Kind::Text => "text (Utf8, LargeUtf8 or Utf8View)",
            Kind::Number => "a number (integer, float or decimal)",
        }
    }
}

/// A declared column.
#[derive(Debug, Clone, Copy)]
pub struct ColumnSpec {
    /// Column name.
    pub name: &'static str,
    /// Type family.
    pub kind: Kind,
    /// Whether nulls are allowed.
    pub nullable: bool,
}

/// A declared raw table.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    /// Table name, also its folder under `raw/`.
    pub name: &'static str,
    /// Whether the pipeline cannot run without it.
    pub required: bool,
    /// What one row is.
    pub grain: &'static str,
    /// Declared columns (files may carry more).
    pub columns: &'static [ColumnSpec],
}

impl TableSpec {
    /// The schema shelfcast writes for this table.
    pub fn canonical_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns.iter().map(|c| Field::new(c.name, c.kind.canonical(), c.nullable)).collect::<Vec<_>>(),
        ))
    }
}

const fn col(name: &'static str, kind: Kind) -> ColumnSpec {
    ColumnSpec { name, kind, nullable: false }
}

const fn opt(name: &'static str, kind: Kind) -> ColumnSpec {
    ColumnSpec { name, kind, nullable: true }
}

use Kind::{Date, Number, Text};

/// Every raw table shelfcast knows, in dependency order.
pub const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "sales",
        required: true,
        grain: "item × location × day",
        columns: &[
            col("date", Date),
            col("item_id", Text),
            col("location_id", Text),
            col("units", Number),
            opt("revenue", Number),
            opt("price", Number),
        ],
    },
    TableSpec {
        name: "items",
        required: false,
        grain: "item",
        columns: &[
            col("item_id", Text),
            col("category", Text),
            opt("brand", Text),
            opt("launch_date", Date),
            opt("base_price", Number),
        ],
    },
    TableSpec {
        name: "locations",
        required: false,
        grain: "location",
        columns: &[col("location_id", Text), opt("region", Text), opt("format", Text)],
    },
    TableSpec {
        name: "prices",
        required: false,
        grain: "item × location × week (date = Monday the shelf price takes effect)",
        columns: &[col("date", Date), col("item_id", Text), col("location_id", Text), col("price", Number)],
    },
    TableSpec {
        name: "promotions",
        required: false,
        grain: "promotion of an item at a location over [start_date, end_date]",
        columns: &[
            col("item_id", Text),
            col("location_id", Text),
            col("start_date", Date),
            col("end_date", Date),
            col("kind", Text),
            opt("discount", Number),
        ],
    },
    TableSpec {
        name: "calendar",
        required: false,
        grain: "event day (everywhere, or at one location or region)",
        columns: &[
            col("date", Date),
            col("event", Text),
            col("kind", Text),
            opt("location_id", Text),
            opt("region", Text),
        ],
    },
    TableSpec {
        name: "closures",
        required: false,
        grain: "a closed period [start_date, end_date] of a location, an item at a location, or everywhere",
        columns: &[
            opt("location_id", Text),
            opt("item_id", Text),
            col("start_date", Date),
            col("end_date", Date),
            opt("reason", Text),
        ],
    },
    TableSpec {
        name: "known_covariates",
        required: false,
        grain: "covariate × day × (item, location, both or neither), known in advance (plans, schedules, forecasts)",
        columns: &[
            col("date", Date),
            opt("item_id", Text),
            opt("location_id", Text),
            col("name", Text),
            opt("value", Number),
            opt("label", Text),
            opt("known_at", Date),
        ],
    },
    TableSpec {
        name: "observed_covariates",
        required: false,
        grain: "covariate × day × (item, location, both or neither), observed on the day",
        columns: &[
            col("date", Date),
            opt("item_id", Text),
            opt("location_id", Text),
            col("name", Text),
            opt("value", Number),
            opt("label", Text),
        ],
    },
    TableSpec {
        name: "competitor_prices",
        required: false,
        grain: "item × competitor × week",
        columns: &[col("date", Date), col("item_id", Text), col("competitor", Text), col("price", Number)],
    },
    TableSpec {
        name: "traffic",
        required: false,
        grain: "item × day (online store)",
        columns: &[col("date", Date), col("item_id", Text), col("views", Number), col("add_to_cart", Number)],
    },
    TableSpec {
        name: "inventory",
        required: false,
        grain: "item × location × day (end-of-day stock)",
        columns: &[col("date", Date), col("item_id", Text), col("location_id", Text), col("on_hand", Number)],
    },
    TableSpec {
        name: "supply",
        required: false,
        grain: "item × location × day (supply terms and open orders as of that day; the planner reads the last)",
        columns: &[
            col("date", Date),
            col("item_id", Text),
            col("location_id", Text),
            opt("lead_time_days", Number),
            opt("review_period_days", Number),
            opt("service_level", Number),
            opt("on_order", Number),
        ],
    },
];

/// The declared table of this name.
pub fn table(name: &str) -> Option<&'static TableSpec> {
    TABLES.iter().find(|t| t.name == name)
}
