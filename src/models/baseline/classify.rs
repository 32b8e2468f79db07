//! Demand classes (Syntetos, Boylan & Croston, 2005): smooth, erratic, intermittent, lumpy, by
//! the average interval between demands (ADI, cut at 1.32) and the squared coefficient of
//! variation of demand sizes (CV², cut at 0.49); series with too little history are `new`.

use serde::{Deserialize, Serialize};

/// A series' demand class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DemandClass {
    /// Regular demand, stable sizes.
    Smooth,
    /// Regular demand, variable sizes.
    Erratic,
    /// Sporadic demand, stable sizes.
    Intermittent,
    /// Sporadic demand, variable sizes.
    Lumpy,
    /// Shorter history than `min_history`, or no demand yet.
    New,
}

impl DemandClass {
    /// The name settings, registries and reports use (`smooth`, `erratic`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DemandClass::Smooth => "smooth",
            DemandClass::Erratic => "erratic",
            DemandClass::Intermittent => "intermittent",
            DemandClass::Lumpy => "lumpy",
            DemandClass::New => "new",
        }
    }
}

/// The class of a series (oldest first).
pub fn classify(y: &[f32], min_history: usize) -> DemandClass {
    let sizes: Vec<f64> = y.iter().filter(|v| **v > 0.0).map(|v| *v as f64).collect();
    if y.len() < min_history || sizes.is_empty() {
        return DemandClass::New;
    }
    let adi = y.len() as f64 / sizes.len() as f64;
    let mean = sizes.iter().sum::<f64>() / sizes.len() as f64;
    let cv2 = if sizes.len() < 2 { 0.0 } else { (super::std_dev(&sizes) / mean).powi(2) };
    match (adi >= 1.32, cv2 >= 0.49) {
        (false, false) => DemandClass::Smooth,
        (false, true) => DemandClass::Erratic,
        (true, false) => DemandClass::Intermittent,
        (true, true) => DemandClass::Lumpy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_classes_and_new_items() {
        assert_eq!(classify(&[5.0, 6.0, 5.0, 4.0, 5.0, 6.0], 4), DemandClass::Smooth);
        assert_eq!(classify(&[1.0, 9.0, 2.0, 12.0, 1.0, 8.0], 4), DemandClass::Erratic);
        assert_eq!(classify(&[0.0, 0.0, 3.0, 0.0, 0.0, 3.0, 0.0, 4.0], 4), DemandClass::Intermittent);
        assert_eq!(classify(&[0.0, 0.0, 1.0, 0.0, 0.0, 20.0, 0.0, 2.0], 4), DemandClass::Lumpy);
        assert_eq!(classify(&[3.0, 4.0], 4), DemandClass::New);
        for c in
            [DemandClass::Smooth, DemandClass::Erratic, DemandClass::Intermittent, DemandClass::Lumpy, DemandClass::New]
        {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str(), "the name is the serialised one");
        }
    }
}
