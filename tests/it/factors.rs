use shelfcast::demo::{self, DemoOptions};
use shelfcast::engine;
use shelfcast::factors::{self, Analysis};
use shelfcast::features::FeatureParams;
use shelfcast::lake::Lake;
use shelfcast::settings::Frequency;

use crate::common::*;

/// Series and days of the recovery lake: enough price and promotion variation per category to
/// pin the elasticities, small enough to stay fast.
const SERIES: usize = 400;
const DAYS: usize = 730;

async fn analysed(lake: &Lake) -> Analysis {
    demo::generate(lake, &DemoOptions::new(SERIES, DAYS, end(), 11), &|_, _| {}).await.unwrap();
    let (ctx, _) = engine::open_with(lake, engine::EngineOptions::threads(2)).await.unwrap();
    let params = FeatureParams::new(end(), Frequency::Daily, 14);
    factors::analyze(&ctx, params).await.unwrap()
}

#[tokio::test]
async fn recovers_the_demo_truth() {
    let lake = Lake::in_memory();
    let a = analysed(&lake).await;
    let truth = demo::read_truth(&lake).await.unwrap();
    for (cat, t) in &truth.categories {
        let own = a.get("elasticity", cat, "own_price").unwrap();
        let cross = a.get("elasticity", cat, "competitor_price").unwrap();
        eprintln!(
            "{cat:<12} own {:>6.2} (true {:>6.2}) [{:.2}, {:.2}]  cross {:>5.2} (true {:>5.2})",
            own.value,
            t.price_elasticity,
            own.low.unwrap(),
            own.high.unwrap(),
            cross.value,
            t.competitor_elasticity
        );
        for (kind, m) in &t.promo_uplift {
            let e = a.get("promotion", cat, kind).map(|e| e.value).unwrap_or(f64::NAN);
            eprintln!("    promo {kind:<10} {:>6.1}% (true {:>6.1}%)", e, (m - 1.0) * 100.0);
        }
        let dip = a.get("post_promotion", cat, "dip").map(|e| e.value).unwrap_or(f64::NAN);
        eprintln!("    dip {:>6.1}% (true {:>6.1}%)", dip, (t.post_promo_dip - 1.0) * 100.0);
    }
    eprintln!("{:?}", truth.outcome.log_variance);
    eprintln!(
        "{:?}",
        a.estimates.iter().filter(|e| e.section == "driver_share").map(|e| (&e.factor, e.value)).collect::<Vec<_>>()
    );
    eprintln!("ranking {:?}\ntruth   {:?}", a.ranking, truth.outcome.factor_ranking);
}
