//! The files a query read, checked after it ran: a query whose input vanished fails.
//!
//! A committed dataset is registered as exactly the files its manifest names. When one of them
//! is gone by the time the query is planned (a newer version of the dataset replaced it and the
//! file was deleted after the grace period), DataFusion takes the missing file for an empty
//! folder and the query returns fewer rows, or none, without an error. Files are never written
//! twice under one name, so a file that exists after the query ran existed while it ran:
//! [`ensure_inputs_exist`], called between running a query and committing its result, turns the
//! silent loss into an error naming the file.

use datafusion::catalog::TableProvider;
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::catalog::view::ViewTable;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::listing::ListingTable;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use object_store::ObjectStoreExt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Fails when a file that one of `plan`'s tables names one by one no longer exists.
pub async fn ensure_inputs_exist(ctx: &SessionContext, plan: &LogicalPlan) -> Result<()> {
    let mut tables = Vec::new();
    scanned(plan, &mut tables)?;
    for table in tables {
        let Some(listing) = table.downcast_ref::<ListingTable>() else { continue };
        for url in listing.table_paths().iter().filter(|u| !u.is_collection()) {
            let store = ctx.runtime_env().object_store(url.object_store())?;
            match store.head(url.prefix()).await {
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(Error::Dataset {
                        path: url.to_string(),
                        message: "an input file of the query is gone (a newer version of its dataset replaced it); \
                                  the query's result was not committed"
                            .into(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Every table `plan` scans, looking into views and subqueries.
fn scanned(plan: &LogicalPlan, out: &mut Vec<Arc<dyn TableProvider>>) -> Result<()> {
    let mut views = Vec::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(table) = source_as_provider(&scan.source)
        {
            if let Some(view) = table.downcast_ref::<ViewTable>() {
                views.push(view.logical_plan().clone());
            }
            out.push(table);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    for view in views {
        scanned(&view, out)?;
    }
    Ok(())
}
