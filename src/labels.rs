//! The labels qdock puts on every container it creates: one definition for the starter, the
//! methods, `qdock gc`, `qdock ps` and the tests. They say whose job a container runs and
//! which starter answers for it; nothing else marks a container as qdock's.

use std::collections::{BTreeMap, HashMap};

use crate::process::ProcessId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Label {
    JobId,
    TaskId,
    Cell,
    Queue,
    OwnerUid,
    Owner,
    /// The image as asked for, normalized.
    Image,
    /// The repository digest when known, else the image ID.
    ImageDigest,
    /// The starter's pid and start time: `qdock gc` tells a live job from an orphan by them.
    StarterPid,
    StarterStart,
}

impl Label {
    pub const fn key(self) -> &'static str {
        match self {
            Label::JobId => "qdock.job-id",
            Label::TaskId => "qdock.task-id",
            Label::Cell => "qdock.cell",
            Label::Queue => "qdock.queue",
            Label::OwnerUid => "qdock.owner-uid",
            Label::Owner => "qdock.owner",
            Label::Image => "qdock.image",
            Label::ImageDigest => "qdock.image-digest",
            Label::StarterPid => "qdock.starter-pid",
            Label::StarterStart => "qdock.starter-start",
        }
    }
}

/// Builds the label map the engine stores.
pub fn to_map(values: impl IntoIterator<Item = (Label, String)>) -> BTreeMap<String, String> {
    values
        .into_iter()
        .map(|(label, value)| (label.key().to_string(), value))
        .collect()
}

/// Reading a container's labels.
pub trait Labelled {
    fn labels(&self) -> &HashMap<String, String>;

    fn label(&self, label: Label) -> Option<&str> {
        self.labels().get(label.key()).map(String::as_str)
    }

    fn owner_uid(&self) -> Option<u32> {
        self.label(Label::OwnerUid)?.parse().ok()
    }

    /// The starter recorded at create, when the labels name one.
    fn starter(&self) -> Option<ProcessId> {
        Some(ProcessId {
            pid: self.label(Label::StarterPid)?.parse().ok()?,
            start: self.label(Label::StarterStart)?.parse().ok()?,
        })
    }

    /// `job 12.0 of alice`, for messages.
    fn job_description(&self) -> String {
        format!(
            "job {}.{} of {}",
            self.label(Label::JobId).unwrap_or("?"),
            self.label(Label::TaskId).unwrap_or("?"),
            self.label(Label::Owner).unwrap_or("?")
        )
    }
}
