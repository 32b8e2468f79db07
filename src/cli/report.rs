//! `shelfcast report`: the report of a run or a backtest (HTML with charts, Markdown, JSON), found
//! by its id or as the latest, written to the lake and optionally to a local folder.

use std::path::PathBuf;

use anyhow::bail;
use shelfcast::jobs::history::{self, RunReport};
use shelfcast::lake::{dataset, layout};
use shelfcast::output::{self, Format, data as out};
use shelfcast::report::{self, Source};

use super::Cx;

/// The job a run id names (`<job>-<YYYYMMDDTHHMMSSmmmZ>-<hex>`), when it has that form.
fn job_of_run_id(run_id: &str) -> Option<&str> {
    let mut parts = run_id.rsplitn(3, '-');
    let (_, stamp, job) = (parts.next()?, parts.next()?, parts.next()?);
    (stamp.len() == 19 && stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T').then_some(job)
}

pub(super) async fn report(
    cx: &Cx,
    run: Option<String>,
    output: Option<PathBuf>,
    format: Format,
) -> anyhow::Result<()> {
    let (settings, lake, clock) = (&cx.settings, &cx.lake, cx.clock.as_ref());
    let of = |r: &RunReport| Source { run_id: r.run_id.clone(), job: Some(r.job.clone()), run_date: Some(r.run_date) };
    let source = match run {
        Some(id) => {
            let mut found = match job_of_run_id(&id) {
                Some(job) => history::recent(lake, Some(job), None).await?.into_iter().find(|r| r.run_id == id),
                None => None,
            };
            if found.is_none() {
                found = history::recent(lake, None, None).await?.into_iter().find(|r| r.run_id == id);
            }
            match found {
                Some(r) => of(&r),
                None if dataset::read_manifest(lake, &layout::backtest(&id)).await?.is_some() => {
                    Source { run_id: id, job: None, run_date: None }
                }
                None => bail!("no run or backtest `{id}` in {lake} (`shelfcast runs` lists the runs)"),
            }
        }
        None => match history::recent(lake, Some("nightly"), Some(1)).await?.first() {
            Some(r) => of(r),
            None => match report::gather::latest_backtest(lake).await? {
                Some(id) => Source { run_id: id, job: None, run_date: None },
                None => bail!("nothing to report in {lake}: run `shelfcast run nightly` or `shelfcast backtest` first"),
            },
        },
    };
    let (report, files) = report::run(lake, settings, &source, clock).await?;
    let mut local = Vec::new();
    if let Some(dir) = output {
        local = report::write_local(&dir, &report)?.iter().map(|p| p.display().to_string()).collect();
    }
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    let done = out::ReportDone { run_id: report.run.run_id.clone(), files, local, notes: report.notes.clone() };
    Ok(output::print(format, &done, out::report)?)
}
