//! Rolling window features at columnar speed.
//!
//! DataFusion evaluates sliding-frame aggregates and `LAG` one row at a time (a `ScalarValue`
//! per row and expression), which dominates feature queries such as 7- and 28-day means,
//! deviations and lags per series. [`RollingWindowRule`] swaps a `BoundedWindowAggExec` whose
//! input is sorted by its partition and order keys for a [`RollingWindowExec`] when every
//! expression in it is one of:
//!
//! - `LAG(x[, k])` with a constant `k >= 0`, no default value, no `IGNORE NULLS`;
//! - `AVG`, `SUM`, `COUNT`, `MIN`, `MAX`, `STDDEV`(`_SAMP`), `STDDEV_POP`, `VAR`(`_SAMP`),
//!   `VAR_POP` (no `DISTINCT`, no `FILTER`) over `ROWS BETWEEN a PRECEDING AND b PRECEDING`
//!   (or `AND CURRENT ROW`), `a <= 1024`.
//!
//! Each batch is computed column by column; between batches only the last rows of the
//! partition still open are kept. Integer values (counts cast to DOUBLE, typically) use exact
//! running integer sums; other values are summed frame by frame, variances in two passes from
//! the frame's first value. Either way a frame of equal values has a variance of exactly 0,
//! where DataFusion's sliding accumulator can return tiny values or NaN. Anything else keeps
//! DataFusion's operator.

use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowNativeTypeOp, ArrowPrimitiveType, AsArray, Float64Array, Int64Array, PrimitiveArray,
    PrimitiveBuilder, downcast_primitive_array,
};
use datafusion::arrow::compute::{cast, concat, partition, take};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, Schema, SchemaRef, UInt32Type, UInt64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{WindowFrame, WindowFrameBound, WindowFrameUnits};
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_expr::window::{SlidingAggregateWindowExpr, StandardWindowExpr, WindowExpr};
use datafusion::physical_expr::{OrderingRequirements, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowUDFExpr};
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, InputOrderMode,
    PlanProperties, RecordBatchStream, ReplaceChildrenOptions, SendableRecordBatchStream,
};
use futures::{Stream, StreamExt};

/// Longest frame (rows before the current one) computed here; longer frames stay in DataFusion.
const MAX_FRAME: usize = 1024;

/// Physical optimizer rule: runs supported window nodes with [`RollingWindowExec`].
#[derive(Debug, Default)]
pub struct RollingWindowRule;

impl PhysicalOptimizerRule for RollingWindowRule {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            Ok(match RollingWindowExec::try_replace(&node)? {
                Some(fast) => Transformed::yes(fast),
                None => Transformed::no(node),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "rolling_window"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Computes the window expressions of a `BoundedWindowAggExec` over sorted input, batch by batch.
#[derive(Debug)]
pub struct RollingWindowExec {
    /// The node replaced: its schema, properties, input requirements and display are kept.
    window: Arc<dyn ExecutionPlan>,
    input: Arc<dyn ExecutionPlan>,
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    features: Arc<[Feature]>,
    metrics: ExecutionPlanMetricsSet,
}

impl RollingWindowExec {
    /// The replacement for `plan`, if it is a `BoundedWindowAggExec` over sorted input whose
    /// expressions are all supported.
    pub fn try_replace(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(window) = plan.downcast_ref::<BoundedWindowAggExec>() else {
            return Ok(None);
        };
        if !matches!(window.input_order_mode, InputOrderMode::Sorted) || window.window_expr().is_empty() {
            return Ok(None);
        }
        let schema = window.input().schema();
        let mut features = Vec::with_capacity(window.window_expr().len());
        for expr in window.window_expr() {
            match Feature::parse(expr, &schema)? {
                Some(f) => features.push(f),
                None => return Ok(None),
            }
        }
        Ok(Some(Arc::new(Self {
            window: Arc::clone(plan),
            input: Arc::clone(window.input()),
            partition_by: window.window_expr()[0].partition_by().to_vec(),
            features: features.into(),
            metrics: ExecutionPlanMetricsSet::new(),
        })))
    }
}

impl DisplayAs for RollingWindowExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let names: Vec<&str> = self.features.iter().map(|f| f.name.as_str()).collect();
        write!(f, "RollingWindowExec: wdw=[{}]", names.join(", "))
    }
}

impl ExecutionPlan for RollingWindowExec {
    fn name(&self) -> &str {
        "RollingWindowExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.window.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.window.apply_expressions(f)
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.window.input_distribution_requirements()
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        self.window.required_input_ordering()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        self.window.benefits_from_input_partitioning()
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let window = Arc::clone(&self.window).replace_children(children, options)?;
        Ok(Self::try_replace(&window)?.unwrap_or(window))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        Ok(Box::pin(RollingStream {
            input: self.input.execute(partition, context)?,
            schema: self.schema(),
            partition_by: self.partition_by.clone(),
            features: Arc::clone(&self.features),
            last_key: None,
            tails: vec![None; self.features.len()],
            metrics: BaselineMetrics::new(&self.metrics, partition),
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One window expression: what to compute from which argument.
#[derive(Debug)]
struct Feature {
    name: String,
    op: Op,
    arg: Arc<dyn PhysicalExpr>,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// The value `k` rows before, within the partition.
    Lag(usize),
    /// An aggregate over the rows `start` to `end` rows before the current one (`start >= end`).
    Frame { agg: Agg, start: usize, end: usize },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Agg {
    Avg,
    Sum,
    Count,
    Min,
    Max,
    Var { sample: bool, sqrt: bool },
}

impl Feature {
    /// The feature for a window expression, or `None` if it is not supported here.
    fn parse(expr: &Arc<dyn WindowExpr>, schema: &Schema) -> Result<Option<Self>> {
        let out = expr.field()?.data_type().clone();
        let name = expr.name().to_string();
        if let Some(sliding) = expr.as_any().downcast_ref::<SlidingAggregateWindowExpr>() {
            let aggregate = sliding.get_aggregate_expr();
            let args = aggregate.expressions();
            // The FILTER clause has no accessor; a derived Debug shows it.
            let plain = !aggregate.is_distinct()
                && !aggregate.ignore_nulls()
                && aggregate.order_bys().is_empty()
                && format!("{sliding:?}").contains("filter: None");
            let (Some((start, end)), [arg], true) = (rows_frame(expr.get_window_frame()), args.as_slice(), plain)
            else {
                return Ok(None);
            };
            let Some(agg) = Agg::parse(aggregate.fun().name(), &arg.data_type(schema)?, &out) else {
                return Ok(None);
            };
            return Ok(Some(Self { name, op: Op::Frame { agg, start, end }, arg: Arc::clone(arg) }));
        }
        let Some(standard) = expr.as_any().downcast_ref::<StandardWindowExpr>() else {
            return Ok(None);
        };
        let Some(udf) = standard.get_standard_func_expr().as_any().downcast_ref::<WindowUDFExpr>() else {
            return Ok(None);
        };
        // IGNORE NULLS and reversal have no accessor; a derived Debug shows them.
        let debug = format!("{udf:?}");
        if udf.fun().name() != "lag" || !debug.contains("ignore_nulls: false") || !debug.contains("is_reversed: false")
        {
            return Ok(None);
        }
        let literal = |e: &Arc<dyn PhysicalExpr>| e.downcast_ref::<Literal>().map(|l| l.value().clone());
        let offset = match udf.args().get(1).map(literal) {
            None => Some(1),
            Some(Some(ScalarValue::Int64(Some(k)))) => usize::try_from(k).ok(),
            Some(_) => None,
        };
        let default_is_null = match udf.args().get(2).map(literal) {
            None => true,
            Some(v) => v.is_some_and(|v| v.is_null()),
        };
        let arg = &udf.args()[0];
        match offset {
            Some(k) if default_is_null && udf.args().len() <= 3 && arg.data_type(schema)? == out => {
                Ok(Some(Self { name, op: Op::Lag(k), arg: Arc::clone(arg) }))
            }
            _ => Ok(None),
        }
    }

    /// Rows before the current one that a result may read.
    fn lookback(&self) -> usize {
        match self.op {
            Op::Lag(k) => k,
            Op::Frame { start, .. } => start,
        }
    }

    /// The results for the rows of `segments`, reading `values` (which may begin with rows of
    /// the previous batch).
    fn compute(&self, values: &ArrayRef, segments: &[Segment]) -> Result<ArrayRef> {
        let Op::Frame { agg, start, end } = self.op else {
            let Op::Lag(k) = self.op else { unreachable!() };
            return lag(values, segments, k);
        };
        let frames = Frames { segments, start, end };
        Ok(match agg {
            Agg::Avg | Agg::Var { .. } => {
                let v = cast(values, &DataType::Float64)?;
                Arc::new(moments(v.as_primitive::<Float64Type>(), &frames, agg))
            }
            Agg::Count => {
                let mut counts = Vec::with_capacity(frames.len());
                frames.for_each(|r| counts.push(r.filter(|&i| values.is_valid(i)).count() as i64));
                Arc::new(Int64Array::from(counts))
            }
            Agg::Sum => match values.data_type() {
                DataType::Int64 => Arc::new(sum(values.as_primitive::<Int64Type>(), &frames)),
                DataType::UInt64 => Arc::new(sum(values.as_primitive::<UInt64Type>(), &frames)),
                DataType::Float64 => Arc::new(sum(values.as_primitive::<Float64Type>(), &frames)),
                t => return internal_err!("rolling SUM over {t}"),
            },
            Agg::Min | Agg::Max => downcast_primitive_array!(
                values => Arc::new(extreme(values, &frames, agg == Agg::Max)),
                t => return internal_err!("rolling MIN/MAX over {t}")
            ),
        })
    }
}

impl Agg {
    /// The aggregate for a function name and its argument and result types.
    fn parse(name: &str, arg: &DataType, out: &DataType) -> Option<Self> {
        let numeric = arg.is_integer() || arg.is_floating();
        let float_out = numeric && *out == DataType::Float64;
        match name {
            "avg" if float_out => Some(Self::Avg),
            "stddev" if float_out => Some(Self::Var { sample: true, sqrt: true }),
            "stddev_pop" if float_out => Some(Self::Var { sample: false, sqrt: true }),
            "var" if float_out => Some(Self::Var { sample: true, sqrt: false }),
            "var_pop" if float_out => Some(Self::Var { sample: false, sqrt: false }),
            "count" if *out == DataType::Int64 => Some(Self::Count),
            "sum" if arg == out && matches!(arg, DataType::Int64 | DataType::UInt64 | DataType::Float64) => {
                Some(Self::Sum)
            }
            "min" | "max"
                if arg == out
                    && (numeric || matches!(arg, DataType::Date32 | DataType::Date64 | DataType::Timestamp(..))) =>
            {
                Some(if name == "min" { Self::Min } else { Self::Max })
            }
            _ => None,
        }
    }
}

/// `(start, end)` rows before the current one for `ROWS BETWEEN start PRECEDING AND end
/// PRECEDING | CURRENT ROW`, if the frame has that shape.
fn rows_frame(frame: &WindowFrame) -> Option<(usize, usize)> {
    let rows_before = |bound: &WindowFrameBound| match bound {
        WindowFrameBound::CurrentRow => Some(0),
        WindowFrameBound::Preceding(ScalarValue::UInt64(Some(n))) => usize::try_from(*n).ok(),
        WindowFrameBound::Preceding(ScalarValue::Int64(Some(n))) => usize::try_from(*n).ok(),
        _ => None,
    };
    if frame.units != WindowFrameUnits::Rows {
        return None;
    }
    let (start, end) = (rows_before(&frame.start_bound)?, rows_before(&frame.end_bound)?);
    (start >= end && start <= MAX_FRAME).then_some((start, end))
}

/// Output rows of one partition, as positions in the values array; `start` is where the
/// partition's rows begin there.
struct Segment {
    start: usize,
    rows: Range<usize>,
}

/// The frame of every output row.
struct Frames<'a> {
    segments: &'a [Segment],
    start: usize,
    end: usize,
}

impl Frames<'_> {
    fn len(&self) -> usize {
        self.segments.iter().map(|s| s.rows.len()).sum()
    }

    /// Calls `f` with each output row's frame, in order.
    fn for_each(&self, mut f: impl FnMut(Range<usize>)) {
        for s in self.segments {
            for row in s.rows.clone() {
                let lo = s.start.max(row.saturating_sub(self.start));
                let hi = (row + 1).saturating_sub(self.end).max(lo);
                f(lo..hi);
            }
        }
    }
}

/// `LAG(values, k)`: the value `k` rows before within the partition, else NULL.
fn lag(values: &ArrayRef, segments: &[Segment], k: usize) -> Result<ArrayRef> {
    let rows: usize = segments.iter().map(|s| s.rows.len()).sum();
    let mut indices = PrimitiveBuilder::<UInt32Type>::with_capacity(rows);
    for s in segments {
        for row in s.rows.clone() {
            match row.checked_sub(k) {
                Some(i) if i >= s.start => indices.append_value(i as u32),
                _ => indices.append_null(),
            }
        }
    }
    Ok(take(values.as_ref(), &indices.finish(), None)?)
}

/// AVG, VAR(_POP) and STDDEV(_POP) over each frame, skipping NULLs. Integral values (counts
/// cast to DOUBLE, typically) use exact running integer sums, O(1) per row; other values are
/// summed frame by frame, in two passes for the variance.
fn moments(values: &Float64Array, frames: &Frames, agg: Agg) -> Float64Array {
    let mut out = PrimitiveBuilder::<Float64Type>::with_capacity(frames.len());
    if let Some(sums) = IntegerSums::new(values) {
        frames.for_each(|frame| {
            let (n, sum, squares) = sums.over(frame);
            // n·Σx² − (Σx)² = n·Σ(x − mean)², exactly (frames hold at most MAX_FRAME + 1 values).
            let spread = (n as i64 * squares - sum * sum) as f64 / n.max(1) as f64;
            out.append_option(finish(agg, n, sum as f64 / n as f64, spread));
        });
        return out.finish();
    }
    let v = values.values();
    let nulls = values.nulls();
    let valid = |i: &usize| nulls.is_none_or(|n| n.is_valid(*i));
    frames.for_each(|frame| {
        // Variances sum deviations from the frame's first value: equal values give exactly 0.
        let shift = match agg {
            Agg::Var { .. } => frame.clone().find(valid).map_or(0.0, |i| v[i]),
            _ => 0.0,
        };
        let (mut n, mut total) = (0usize, 0.0);
        for i in frame.clone().filter(valid) {
            n += 1;
            total += v[i] - shift;
        }
        let mean = total / n as f64;
        let spread = match agg {
            Agg::Var { .. } if n > 0 => {
                frame.filter(valid).map(|i| (v[i] - shift - mean) * (v[i] - shift - mean)).sum()
            }
            _ => 0.0,
        };
        out.append_option(finish(agg, n, shift + mean, spread));
    });
    out.finish()
}

/// The aggregate of `n` values with this mean and sum of squared deviations.
fn finish(agg: Agg, n: usize, mean: f64, spread: f64) -> Option<f64> {
    let var = |sample: bool| match (sample, n) {
        (_, 0) | (true, 1) => None,
        (true, _) => Some(spread / (n - 1) as f64),
        (false, _) => Some(spread / n as f64),
    };
    match agg {
        _ if n == 0 => None,
        Agg::Avg => Some(mean),
        Agg::Var { sample, sqrt: false } => var(sample),
        Agg::Var { sample, sqrt: true } => var(sample).map(f64::sqrt),
        _ => unreachable!("moments of {agg:?}"),
    }
}

/// Running count, sum and sum of squares of values that are all integers of at most 2²⁰ in
/// magnitude (at most 2²² of them), so that every frame's sums are exact in `i64`.
struct IntegerSums {
    counts: Option<Vec<u32>>,
    sums: Vec<i64>,
    squares: Vec<i64>,
}

impl IntegerSums {
    const MAX_VALUE: f64 = (1 << 20) as f64;

    fn new(values: &Float64Array) -> Option<Self> {
        let (nulls, len) = (values.nulls(), values.len());
        if len > 1 << 22 {
            return None;
        }
        let mut sums = Vec::with_capacity(len + 1);
        let mut squares = Vec::with_capacity(len + 1);
        let mut counts = nulls.map(|_| Vec::with_capacity(len + 1));
        let (mut s, mut q, mut c) = (0i64, 0i64, 0u32);
        for (i, &x) in values.values().iter().enumerate() {
            sums.push(s);
            squares.push(q);
            counts.iter_mut().for_each(|v| v.push(c));
            if nulls.is_none_or(|n| n.is_valid(i)) {
                if x.fract() != 0.0 || x.abs() > Self::MAX_VALUE {
                    return None;
                }
                let k = x as i64;
                (s, q, c) = (s + k, q + k * k, c + 1);
            }
        }
        sums.push(s);
        squares.push(q);
        counts.iter_mut().for_each(|v| v.push(c));
        Some(Self { counts, sums, squares })
    }

    /// `(count, sum, sum of squares)` of the valid values in `rows`.
    fn over(&self, rows: Range<usize>) -> (usize, i64, i64) {
        let (lo, hi) = (rows.start, rows.end);
        let n = match &self.counts {
            Some(c) => (c[hi] - c[lo]) as usize,
            None => hi - lo,
        };
        (n, self.sums[hi] - self.sums[lo], self.squares[hi] - self.squares[lo])
    }
}

/// SUM over each frame (wrapping on overflow, as DataFusion's), skipping NULLs.
fn sum<T: ArrowPrimitiveType>(values: &PrimitiveArray<T>, frames: &Frames) -> PrimitiveArray<T> {
    let mut out = PrimitiveBuilder::<T>::with_capacity(frames.len());
    frames.for_each(|frame| {
        let mut acc: Option<T::Native> = None;
        for i in frame.filter(|&i| values.is_valid(i)) {
            let x = values.value(i);
            acc = Some(acc.map_or(x, |a| a.add_wrapping(x)));
        }
        out.append_option(acc);
    });
    out.finish()
}

/// MIN or MAX over each frame (floats in IEEE total order, as Arrow's kernels), skipping NULLs.
fn extreme<T: ArrowPrimitiveType>(values: &PrimitiveArray<T>, frames: &Frames, max: bool) -> PrimitiveArray<T> {
    let mut out = PrimitiveBuilder::<T>::with_capacity(frames.len()).with_data_type(values.data_type().clone());
    frames.for_each(|frame| {
        let mut best: Option<T::Native> = None;
        for i in frame.filter(|&i| values.is_valid(i)) {
            let x = values.value(i);
            best = Some(match best {
                Some(b) if (max && !x.is_gt(b)) || (!max && !x.is_lt(b)) => b,
                _ => x,
            });
        }
        out.append_option(best);
    });
    out.finish()
}

/// The stream of one output partition.
struct RollingStream {
    input: SendableRecordBatchStream,
    schema: SchemaRef,
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    features: Arc<[Feature]>,
    /// PARTITION BY values of the last row seen.
    last_key: Option<Vec<ScalarValue>>,
    /// Per feature: the last rows (at most its lookback) of the partition still open.
    tails: Vec<Option<ArrayRef>>,
    metrics: BaselineMetrics,
}

impl RollingStream {
    fn process(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(RecordBatch::new_empty(Arc::clone(&self.schema)));
        }
        let keys = self.partition_by.iter().map(|e| e.evaluate(batch)?.into_array(n)).collect::<Result<Vec<_>>>()?;
        let ranges: Vec<Range<usize>> =
            if keys.is_empty() { std::iter::once(0..n).collect() } else { partition(&keys)?.ranges() };
        let first = row_key(&keys, 0)?;
        let continues = self.last_key.as_ref() == Some(&first);
        self.last_key = Some(row_key(&keys, n - 1)?);

        let mut columns = batch.columns().to_vec();
        for (feature, tail) in self.features.iter().zip(self.tails.iter_mut()) {
            let batch_values = feature.arg.evaluate(batch)?.into_array(n)?;
            let (values, offset) = match tail.take() {
                Some(t) if continues && !t.is_empty() => (concat(&[t.as_ref(), batch_values.as_ref()])?, t.len()),
                _ => (batch_values, 0),
            };
            let segments: Vec<Segment> = ranges
                .iter()
                .enumerate()
                .map(|(i, r)| Segment {
                    start: if i == 0 { 0 } else { offset + r.start },
                    rows: offset + r.start..offset + r.end,
                })
                .collect();
            columns.push(feature.compute(&values, &segments)?);
            let keep = feature.lookback();
            if keep > 0 {
                let from = segments[segments.len() - 1].start.max(values.len().saturating_sub(keep));
                *tail = Some(values.slice(from, values.len() - from));
            }
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// The PARTITION BY values of one row.
fn row_key(keys: &[ArrayRef], row: usize) -> Result<Vec<ScalarValue>> {
    keys.iter().map(|k| ScalarValue::try_from_array(k, row)).collect()
}

impl Stream for RollingStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = match ready!(self.input.poll_next_unpin(cx)) {
            Some(Ok(batch)) => {
                let elapsed = self.metrics.elapsed_compute().clone();
                let timer = elapsed.timer();
                let out = self.process(&batch);
                timer.done();
                Some(out)
            }
            other => other,
        };
        self.metrics.record_poll(Poll::Ready(next))
    }
}

impl RecordBatchStream for RollingStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int8Array, Int32Array};
    use datafusion::arrow::datatypes::Field;
    use datafusion::datasource::MemTable;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{SessionConfig, SessionContext};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Series (g1, g2) of 0..40 days, unsorted, with NULLs in every value column.
    fn table() -> MemTable {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut rows = Vec::new();
        for g1 in 0..4 {
            for g2 in 0..3 {
                for day in 0..rng.random_range(1..40) {
                    rows.push((g1, g2, day));
                }
            }
        }
        let n = rows.len();
        let maybe = |rng: &mut ChaCha8Rng| rng.random_bool(0.85);
        let units: Int32Array = (0..n).map(|_| maybe(&mut rng).then(|| rng.random_range(0..20))).collect();
        let price: Float64Array = (0..n).map(|_| maybe(&mut rng).then(|| rng.random_range(1.0..9.0))).collect();
        let promo: Int8Array = (0..n).map(|_| maybe(&mut rng).then(|| rng.random_range(0..2))).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("g1", DataType::Int32, false),
            Field::new("g2", DataType::Int32, false),
            Field::new("day", DataType::Int32, false),
            Field::new("units", DataType::Int32, true),
            Field::new("price", DataType::Float64, true),
            Field::new("promo", DataType::Int8, true),
        ]));
        let column = |f: fn(&(i32, i32, i32)) -> i32| Arc::new(rows.iter().map(f).collect::<Int32Array>()) as ArrayRef;
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![column(|r| r.0), column(|r| r.1), column(|r| r.2), Arc::new(units), Arc::new(price), Arc::new(promo)],
        )
        .unwrap();
        // Shuffled into small batches, so the plan sorts and partitions cross batch boundaries.
        let mut order: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let shuffled = take_batch(&batch, &order);
        let batches = (0..n).step_by(11).map(|i| shuffled.slice(i, 11.min(n - i))).collect();
        MemTable::try_new(schema, vec![batches]).unwrap()
    }

    fn take_batch(batch: &RecordBatch, order: &[u32]) -> RecordBatch {
        let idx = datafusion::arrow::array::UInt32Array::from(order.to_vec());
        let cols = batch.columns().iter().map(|c| take(c.as_ref(), &idx, None).unwrap()).collect();
        RecordBatch::try_new(batch.schema(), cols).unwrap()
    }

    const W: &str = "PARTITION BY g1, g2 ORDER BY day";

    fn query() -> String {
        let frame = |f: &str, x: &str, rows: &str| format!("{f}({x}) OVER ({W} ROWS BETWEEN {rows})");
        let mut cols = vec![
            format!("LAG(units) OVER ({W})"),
            format!("LAG(units, 3) OVER ({W})"),
            format!("LAG(promo, 1) OVER ({W})"),
            format!("LAG(price, 30) OVER ({W})"),
        ];
        for rows in ["3 PRECEDING AND 1 PRECEDING", "5 PRECEDING AND CURRENT ROW", "1 PRECEDING AND 1 PRECEDING"] {
            for f in ["AVG", "SUM", "COUNT", "MIN", "MAX", "STDDEV_SAMP", "STDDEV_POP", "VAR_SAMP", "VAR_POP"] {
                cols.push(frame(f, "units", rows));
                cols.push(frame(f, "price", rows));
            }
        }
        let cols: Vec<String> = cols.iter().enumerate().map(|(i, c)| format!("{c} AS c{i}")).collect();
        format!("SELECT g1, g2, day, {} FROM t ORDER BY g1, g2, day", cols.join(", "))
    }

    async fn run(ctx: SessionContext, sql: &str) -> (String, Vec<RecordBatch>) {
        ctx.register_table("t", Arc::new(table())).unwrap();
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        let shown = displayable(plan.as_ref()).indent(true).to_string();
        (shown, collect(plan, ctx.task_ctx()).await.unwrap())
    }

    fn config() -> SessionConfig {
        SessionConfig::new().with_target_partitions(3).with_batch_size(7)
    }

    /// Every value as `column name: value`, floats to 10 significant digits.
    fn cells(batches: &[RecordBatch]) -> Vec<String> {
        let mut out = Vec::new();
        for b in batches {
            for row in 0..b.num_rows() {
                for (field, c) in b.schema().fields().iter().zip(b.columns()) {
                    let v = match ScalarValue::try_from_array(c, row).unwrap() {
                        ScalarValue::Float64(Some(x)) => format!("{:.9e}", if x.abs() < 1e-12 { 0.0 } else { x }),
                        v => v.to_string(),
                    };
                    out.push(format!("{}: {v}", field.name()));
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn matches_datafusion_on_lags_and_rolling_aggregates() {
        let sql = query();
        let (plain_plan, expected) = run(SessionContext::new_with_config(config()), &sql).await;
        let state = datafusion::execution::session_state::SessionStateBuilder::new()
            .with_config(config())
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(RollingWindowRule))
            .build();
        let (plan, actual) = run(SessionContext::new_with_state(state), &sql).await;
        assert!(!plain_plan.contains("RollingWindowExec"));
        assert!(plan.contains("RollingWindowExec") && !plan.contains("BoundedWindowAggExec"), "{plan}");
        let (actual, expected) = (cells(&actual), cells(&expected));
        assert_eq!(actual.len(), expected.len());
        // DataFusion's sliding variance can turn a frame of equal values into NaN; ours gives 0.
        let known = |a: &str, e: &str| e.ends_with(": NaN") && a.ends_with(": 0.000000000e0");
        let differ: Vec<_> = actual.iter().zip(&expected).filter(|(a, e)| a != e && !known(a, e)).take(5).collect();
        assert!(differ.is_empty(), "{} cells differ, e.g. (ours, DataFusion's): {differ:?}", differ.len());
    }

    #[tokio::test]
    async fn leaves_other_frames_to_datafusion() {
        let ctx = crate::engine::local_context(2);
        for sql in [
            format!("SELECT AVG(units) OVER ({W} ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) FROM t"),
            format!("SELECT AVG(units) OVER ({W} RANGE BETWEEN 2 PRECEDING AND CURRENT ROW) FROM t"),
            format!("SELECT LAG(units, 1, 0) OVER ({W}), AVG(units) OVER ({W} ROWS 2 PRECEDING) FROM t"),
            format!("SELECT LEAD(units) OVER ({W}) FROM t"),
        ] {
            let (plan, _) = run(ctx.clone(), &sql).await;
            ctx.deregister_table("t").unwrap();
            assert!(!plan.contains("RollingWindowExec"), "{sql}\n{plan}");
        }
    }

    #[tokio::test]
    async fn equal_values_have_zero_deviation() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int32, false),
            Field::new("x", DataType::Float64, false),
        ]));
        let columns: Vec<ArrayRef> =
            vec![Arc::new(Int32Array::from_iter_values(0..100)), Arc::new(Float64Array::from(vec![0.1; 100]))];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
        let ctx = crate::engine::local_context(1);
        ctx.register_table("c", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())).unwrap();
        let sql = "SELECT STDDEV_SAMP(x) OVER (ORDER BY i ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING) FROM c ORDER BY i";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let values: Vec<Option<f64>> =
            batches.iter().flat_map(|b| b.column(0).as_primitive::<Float64Type>().iter().collect::<Vec<_>>()).collect();
        assert_eq!(values[..2], [None, None]);
        assert!(values[2..].iter().all(|v| *v == Some(0.0)), "{values:?}");
    }
}
