//! `shelfcast_try_date(text, format)`: a date read with a chrono format (`%m/%d/%Y`), NULL when
//! the text does not read as one, for `--date-format` imports. (DataFusion's `to_date` fails the
//! whole query on one unreadable value; this lets the import quarantine that row alone.)

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Date32Builder, StringArray};
use arrow::datatypes::DataType;
use chrono::NaiveDate;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

/// The function's name in SQL.
pub const NAME: &str = "shelfcast_try_date";

/// The function, to register on a session.
pub fn udf() -> ScalarUDF {
    create_udf(NAME, vec![DataType::Utf8, DataType::Utf8], DataType::Date32, Volatility::Immutable, Arc::new(eval))
}

fn eval(args: &[ColumnarValue]) -> datafusion::error::Result<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let text = arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
    let format = arrow::compute::cast(&arrays[1], &DataType::Utf8)?;
    let (text, format) = (as_strings(&text)?, as_strings(&format)?);
    let epoch = crate::days::epoch();
    let mut out = Date32Builder::with_capacity(text.len());
    for i in 0..text.len() {
        let day = (text.is_valid(i) && format.is_valid(i))
            .then(|| NaiveDate::parse_from_str(text.value(i).trim(), format.value(i)).ok())
            .flatten()
            .and_then(|d| i32::try_from((d - epoch).num_days()).ok());
        out.append_option(day);
    }
    Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
}

fn as_strings(a: &ArrayRef) -> datafusion::error::Result<&StringArray> {
    a.as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| datafusion::error::DataFusionError::Internal(format!("{NAME}: expected text")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreadable_dates_are_null() {
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_udf(udf());
        let sql = format!(
            "SELECT CAST({NAME}(CAST(x AS VARCHAR), '%m/%d/%Y') AS VARCHAR) AS d \
             FROM (VALUES ('04/01/2026'), ('soon'), (NULL)) t(x)"
        );
        let rows = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string();
        assert!(text.contains("2026-04-01"), "{text}");
        assert_eq!(rows.iter().map(|b| b.column(0).null_count()).sum::<usize>(), 2, "{text}");
    }
}
