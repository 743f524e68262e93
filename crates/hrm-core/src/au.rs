//! The Action Unit catalogue: the AU sets the HRM models predict, in HRM's column order.

use std::sync::Arc;

/// One facial Action Unit (or Action Descriptor) as HRM labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Au {
    /// HRM's column label in `predict.csv` (`27` stands for AU2X, i.e. AU26 or AU27).
    pub label: u32,
    /// The id hrm uses in its output (`AU1`, `AD19`, `AU2X`, `AU43E`, ...).
    pub id: &'static str,
    /// The FACS name.
    pub name: &'static str,
    /// OpenFace-style column stem (`AU01`, ...), to which `_r` / `_c` suffixes are added.
    pub column: &'static str,
}

const fn au(label: u32, id: &'static str, name: &'static str, column: &'static str) -> Au {
    Au { label, id, name, column }
}

const AU1: Au = au(1, "AU1", "Inner Brow Raiser", "AU01");
const AU2: Au = au(2, "AU2", "Outer Brow Raiser", "AU02");
const AU4: Au = au(4, "AU4", "Brow Lowerer", "AU04");
const AU6: Au = au(6, "AU6", "Cheek Raiser", "AU06");
const AU7: Au = au(7, "AU7", "Lid Tightener", "AU07");
const AU9: Au = au(9, "AU9", "Nose Wrinkler", "AU09");
const AU10: Au = au(10, "AU10", "Upper Lip Raiser", "AU10");
const AU12: Au = au(12, "AU12", "Lip Corner Puller", "AU12");
const AU14: Au = au(14, "AU14", "Dimpler", "AU14");
const AU15: Au = au(15, "AU15", "Lip Corner Depressor", "AU15");
const AU16: Au = au(16, "AU16", "Lower Lip Depressor", "AU16");
const AU17: Au = au(17, "AU17", "Chin Raiser", "AU17");
const AU18: Au = au(18, "AU18", "Lip Pucker", "AU18");
const AD19: Au = au(19, "AD19", "Tongue Show", "AD19");
const AU20: Au = au(20, "AU20", "Lip Stretcher", "AU20");
const AU23: Au = au(23, "AU23", "Lip Tightener", "AU23");
const AU24: Au = au(24, "AU24", "Lip Pressor", "AU24");
const AU25: Au = au(25, "AU25", "Lips Part", "AU25");
const AU2X: Au = au(27, "AU2X", "Jaw Drop or Mouth Stretch (AU26/AU27)", "AU2X");
const AU28: Au = au(28, "AU28", "Lip Suck", "AU28");
const AD32: Au = au(32, "AD32", "Bite", "AD32");
const AU43E: Au = au(43, "AU43E", "Eyes Closed", "AU43E");

const HRM22: [Au; 22] = [
    AU1, AU2, AU4, AU6, AU7, AU9, AU10, AU12, AU14, AU15, AU16, AU17, AU18, AD19, AU20, AU23, AU24, AU25, AU2X, AU28,
    AD32, AU43E,
];

const HRM17: [Au; 17] =
    [AU1, AU2, AU4, AU6, AU7, AU9, AU10, AU12, AU14, AU15, AU16, AU17, AU20, AU23, AU24, AU25, AU2X];

// AUs outside HRM's sets, which other AU models report (BP4D's and DISFA's AU5, AU26, ...).
const AU5: Au = au(5, "AU5", "Upper Lid Raiser", "AU05");
const AU11: Au = au(11, "AU11", "Nasolabial Deepener", "AU11");
const AU13: Au = au(13, "AU13", "Sharp Lip Puller", "AU13");
const AU22: Au = au(22, "AU22", "Lip Funneler", "AU22");
const AU26: Au = au(26, "AU26", "Jaw Drop", "AU26");
const AU27: Au = au(27, "AU27", "Mouth Stretch", "AU27");
const AU45: Au = au(45, "AU45", "Blink", "AU45");

/// Every AU and AD a model may report: a manifest names its outputs by these ids.
const CATALOGUE: [Au; 29] = [
    AU1, AU2, AU4, AU5, AU6, AU7, AU9, AU10, AU11, AU12, AU13, AU14, AU15, AU16, AU17, AU18, AD19, AU20, AU22, AU23,
    AU24, AU25, AU26, AU27, AU2X, AU28, AD32, AU43E, AU45,
];

/// The AU with this id (`AU12`, `AD19`), if the catalogue has it.
pub fn find(id: &str) -> Option<&'static Au> {
    CATALOGUE.iter().find(|au| au.id == id)
}

/// The ids the catalogue knows, for error messages.
pub fn known_ids() -> Vec<&'static str> {
    CATALOGUE.iter().map(|au| au.id).collect()
}

/// The AUs a model reports, in the order of its output columns (from its manifest). Cheap to
/// clone: the list is shared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuList(Arc<[Au]>);

impl AuList {
    /// The 22 AUs/ADs of the HRM paper.
    pub fn hrm22() -> AuList {
        AuList(HRM22.into())
    }

    /// HRM's 17-AU subset.
    pub fn hrm17() -> AuList {
        AuList(HRM17.into())
    }

    /// The list for these ids, or the first id the catalogue does not know.
    pub fn from_ids<S: AsRef<str>>(ids: &[S]) -> std::result::Result<AuList, String> {
        ids.iter()
            .map(|id| find(id.as_ref()).copied().ok_or_else(|| id.as_ref().to_string()))
            .collect::<std::result::Result<Vec<Au>, String>>()
            .map(|aus| AuList(aus.into()))
    }

    /// The HRM set whose size matches a classifier's number of outputs (22 or 17).
    pub fn for_output_count(n: usize) -> Option<AuList> {
        [AuList::hrm22(), AuList::hrm17()].into_iter().find(|list| list.len() == n)
    }

    pub fn aus(&self) -> &[Au] {
        &self.0
    }

    pub fn ids(&self) -> Vec<&'static str> {
        self.0.iter().map(|au| au.id).collect()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Position of an AU id (`AU12`) in this list.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.0.iter().position(|au| au.id == id)
    }
}

/// `hrm22` or `hrm17` when the list is one of HRM's sets, else the number of AUs.
impl std::fmt::Display for AuList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self.0 == HRM22 {
            f.write_str("hrm22")
        } else if *self.0 == HRM17 {
            f.write_str("hrm17")
        } else {
            write!(f, "{} AUs", self.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrm22_labels_follow_the_hrm_csv_header() {
        let labels: Vec<u32> = AuList::hrm22().aus().iter().map(|au| au.label).collect();
        assert_eq!(labels, [1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 16, 17, 18, 19, 20, 23, 24, 25, 27, 28, 32, 43]);
    }

    #[test]
    fn hrm17_labels_follow_the_hrm_csv_header() {
        let labels: Vec<u32> = AuList::hrm17().aus().iter().map(|au| au.label).collect();
        assert_eq!(labels, [1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 16, 17, 20, 23, 24, 25, 27]);
    }

    #[test]
    fn special_ids_are_named_as_hrm_names_them() {
        let ids: Vec<&str> = AuList::hrm22().aus().iter().map(|au| au.id).collect();
        assert_eq!(ids[13], "AD19");
        assert_eq!(ids[18], "AU2X");
        assert_eq!(ids[19..], ["AU28", "AD32", "AU43E"]);
        assert_eq!(AuList::hrm22().index_of("AU43E"), Some(21));
    }

    #[test]
    fn sets_are_found_by_output_count() {
        assert_eq!(AuList::for_output_count(22), Some(AuList::hrm22()));
        assert_eq!(AuList::for_output_count(17), Some(AuList::hrm17()));
        assert_eq!(AuList::for_output_count(12), None);
    }

    #[test]
    fn lists_come_from_ids_and_unknown_ids_are_named() {
        let list = AuList::from_ids(&["AU12", "AD19"]).unwrap();
        assert_eq!(list.ids(), ["AU12", "AD19"]);
        assert_eq!(list.aus()[1].label, 19);
        assert_eq!(list.to_string(), "2 AUs");
        assert_eq!(AuList::from_ids(&["AU12", "AU99"]), Err("AU99".to_string()));
        // BP4D's AUs, outside HRM's sets.
        let bp4d = ["AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23", "AU24"];
        assert_eq!(AuList::from_ids(&bp4d).unwrap().len(), 12);
        assert_eq!(AuList::from_ids(&["AU26", "AU45"]).unwrap().aus()[1].column, "AU45");
        assert_eq!(AuList::from_ids(&AuList::hrm17().ids()).unwrap().to_string(), "hrm17");
    }
}
