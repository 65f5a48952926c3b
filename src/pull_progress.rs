//! What a job's `.e` file says while its image is pulled: a few lines, never the engine's
//! progress flood (a status per layer every few hundred kilobytes). One line when a layer is
//! in place, with how many are; the rest is dropped. (How many layers there are in all is
//! not known before the end: the engine names a layer present already only then.)

use std::collections::BTreeSet;

/// The layers of one pull in place so far, as the engine's progress messages name them.
#[derive(Debug, Default)]
pub struct PullProgress {
    done: BTreeSet<String>,
}

impl PullProgress {
    /// Takes one progress message (`id`: the layer, when it is about one); returns the line
    /// to report, if any.
    pub fn update(&mut self, id: Option<&str>, status: &str) -> Option<String> {
        // Messages about the image as a whole ("Pulling from …", "Digest: …") carry no
        // layer id, or the tag as id.
        let id = id.filter(|id| is_layer_id(id))?;
        let what = match status {
            "Pull complete" => "pulled",
            "Already exists" => "present already",
            _ => return None,
        };
        if !self.done.insert(id.to_string()) {
            return None;
        }
        Some(format!("layer {id} {what} ({} in place)", self.done.len()))
    }
}

/// The engine names layers by the first 12 hex digits of their digest.
fn is_layer_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages of a real pull of a two-layer image (docker 20.10), in order.
    const PULL: &[(Option<&str>, &str)] = &[
        (Some("1"), "Pulling from qdock/pulltest"),
        (Some("5b0c3a2f1d4e"), "Pulling fs layer"),
        (Some("9a8b7c6d5e4f"), "Pulling fs layer"),
        (Some("9a8b7c6d5e4f"), "Waiting"),
        (Some("5b0c3a2f1d4e"), "Downloading"),
        (Some("5b0c3a2f1d4e"), "Downloading"),
        (Some("5b0c3a2f1d4e"), "Verifying Checksum"),
        (Some("5b0c3a2f1d4e"), "Download complete"),
        (Some("5b0c3a2f1d4e"), "Extracting"),
        (Some("5b0c3a2f1d4e"), "Extracting"),
        (Some("5b0c3a2f1d4e"), "Pull complete"),
        (Some("9a8b7c6d5e4f"), "Downloading"),
        (Some("9a8b7c6d5e4f"), "Download complete"),
        (Some("9a8b7c6d5e4f"), "Extracting"),
        (Some("9a8b7c6d5e4f"), "Pull complete"),
        (None, "Digest: sha256:0123"),
        (
            None,
            "Status: Downloaded newer image for 10.231.0.1:5000/qdock/pulltest:1",
        ),
    ];

    #[test]
    fn one_line_per_layer_in_place() {
        let mut progress = PullProgress::default();
        let lines: Vec<String> = PULL
            .iter()
            .filter_map(|(id, status)| progress.update(*id, status))
            .collect();
        assert_eq!(
            lines,
            [
                "layer 5b0c3a2f1d4e pulled (1 in place)",
                "layer 9a8b7c6d5e4f pulled (2 in place)"
            ]
        );
    }

    #[test]
    fn layers_present_already_are_counted_once() {
        let mut progress = PullProgress::default();
        assert_eq!(
            progress.update(Some("5b0c3a2f1d4e"), "Already exists"),
            Some("layer 5b0c3a2f1d4e present already (1 in place)".into())
        );
        assert_eq!(
            progress.update(Some("5b0c3a2f1d4e"), "Already exists"),
            None
        );
    }

    #[test]
    fn messages_about_the_image_say_nothing() {
        let mut progress = PullProgress::default();
        assert_eq!(progress.update(Some("latest"), "Pulling from x"), None);
        assert_eq!(progress.update(Some("1"), "Pull complete"), None);
        assert_eq!(progress.update(None, "Pull complete"), None);
    }
}
