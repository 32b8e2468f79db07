use chrono::NaiveDate;
use shelfcast::models::nn;
use shelfcast::panel::{Panel, SeriesKey};
use shelfcast::settings::Frequency;

#[test]
fn a_panel_round_trips_through_a_cpu_tensor() {
    let values = vec![vec![1.0, 2.0, 3.0, 4.0], vec![5.0, 6.0]];
    let keys = (0..2).map(|i| SeriesKey { item_id: format!("i{i}"), location_id: "s".into() }).collect();
    let panel = Panel::new(keys, values, NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(), Frequency::Daily);
    let t = nn::history_tensor(&panel, 3, tch::Device::Cpu).unwrap();
    assert_eq!(t.size(), [2, 3]);
    let doubled = &t * 2.0;
    let rows = nn::tensor_rows(&doubled).unwrap();
    assert_eq!(rows, vec![vec![4.0, 6.0, 8.0], vec![0.0, 10.0, 12.0]]);
    // CUDA when present, CPU otherwise: either way a device is chosen.
    assert!(["cpu", "cuda:0"].contains(&nn::device_name().as_str()));
}
