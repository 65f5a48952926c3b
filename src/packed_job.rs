//! The execd's own copy of a job, `<execd_spool>/<host>/jobs/00/0000/<job>.<task>`: the
//! resources the job was granted on request (`qsub -l gpu=2`). The environment says nothing
//! that counts there (`SGE_HGR_*`, `CUDA_VISIBLE_DEVICES` are the caller's to set), and the
//! spool entry's `config` lists no requests, so this file is the one place on an execution
//! host that says how many of a consumable the scheduler granted.
//!
//! The file is CULL's packed format (Grid Engine's `cull_pack.c`): big-endian 32-bit
//! integers, 64-bit XDR doubles, NUL-terminated strings, and lists that carry their own field
//! descriptors. Only the job element itself is packed without one (it is bound to the
//! execd's job list), so its field types are fixed here per format version. The whole file
//! must parse to its last byte, and name the job asked for, or nothing is believed: a string
//! a user wrote (a job name, a variable) can never pass for a field.

/// One version of the packed format (`CULL_VERSION`) as one Grid Engine writes it: the job
/// type's fields (`JB_Type`), one letter per field, and where the grant is among them.
struct Format {
    version: u32,
    job: &'static str,
    grant: Grant,
    /// Open Cluster Scheduler's layout (see [`Reader::ocs`]).
    ocs: bool,
}

/// Where a format keeps what the job was granted, by field positions.
enum Grant {
    /// Son of Grid Engine: the job's hard requests (`JB_hard_resource_list`, complex entries:
    /// `CE_name`, `CE_stringval`, `CE_doubleval`, `CE_consumable`), counted by the scheduler.
    HardRequests { list: usize },
    /// Open Cluster Scheduler: each array task's granted resources (`JB_ja_tasks`,
    /// `JAT_granted_resources_list`, entries `GRU_name`, `GRU_amount`,
    /// `GRU_resource_map_list` of `RESL_value` ids, `GRU_host`), per host, with RSMAP ids.
    GrantedResources { tasks: usize, granted: usize },
}

const FORMATS: &[Format] = &[
    Format {
        version: 0x1002_0000,
        job: "USULLLLLLSSSSSSUSUUUSUSUSSBUBUULULLLUSOUULLLBLLLLULSLLSSLLLLLLLLLHRLLUUUULLDDDDDDUUUL",
        grant: Grant::HardRequests { list: 45 },
        ocs: false,
    },
    // Open Cluster Scheduler 9.1.4 (V914_TAG): ULONG64 times, request sets, RSMAP grants.
    Format {
        version: 0x1002_1000,
        job: "USULLLLLLSSSSSSUSWWWSUSUSSBUBUULULLLUSOUULLLBLULSLSSLLLLLLLLLHRLLUWWULLDDDDDDUUUOSLLUUU",
        grant: Grant::GrantedResources {
            tasks: 60,
            granted: 8,
        },
        ocs: true,
    },
];
/// `JB_job_number`: the first of the job's fields.
const JOB_NUMBER: usize = 0;
/// `CE_consumable`'s value for a consumable counted once per job, not per slot.
const CONSUMABLE_JOB: u32 = 2;
/// An element packed with its own descriptor (`FREE_ELEM`).
const FREE_ELEM: u32 = 1;

/// What the job was granted of one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub name: String,
    /// As the job wrote it (Son of Grid Engine), or the ids granted, space-separated.
    pub text: String,
    /// As Grid Engine counted it.
    pub amount: f64,
    /// A consumable counted once for the job (`JOB`), not once per slot (`YES`).
    pub per_job: bool,
    /// Where a Grid Engine grants per host (Open Cluster Scheduler): the host, and the
    /// resource map's ids granted there (`gpu=2(0 1)`), which are the devices to give.
    pub host: Option<String>,
    pub ids: Vec<String>,
}

/// What job `job_id` in `packed` was granted, None when the file is of a format qdock does
/// not know (another Grid Engine), or why the file is not believed.
pub fn hard_requests(packed: &[u8], job_id: u64) -> Result<Option<Vec<Request>>, String> {
    let mut r = Reader {
        buf: packed,
        at: 0,
        ocs: false,
    };
    let (pad, version) = (r.u32()?, r.u32()?);
    let Some(format) = FORMATS.iter().find(|f| pad == 0 && f.version == version) else {
        return Ok(None);
    };
    if format.ocs {
        r.ocs = true;
        let _auth_info = r.string()?;
    }
    let descr: Vec<(u32, u8)> = format
        .job
        .bytes()
        .enumerate()
        .map(|(i, t)| Ok((i as u32, type_code(t)?)))
        .collect::<Result<_, String>>()?;
    let job = r.element(&descr)?;
    if r.at != packed.len() {
        return Err(format!("{} bytes after the job", packed.len() - r.at));
    }
    match job.get(JOB_NUMBER) {
        Some(Value::Ulong(n)) if u64::from(*n) == job_id => {}
        other => return Err(format!("the file is not job {job_id}'s: {other:?}")),
    }
    let requests: Result<Vec<Request>, String> = match format.grant {
        Grant::HardRequests { list } => list_at(&job, list).iter().map(request).collect(),
        Grant::GrantedResources { tasks, granted } => list_at(&job, tasks)
            .iter()
            .flat_map(|task| list_at(task, granted))
            .map(granted_resource)
            .collect(),
    };
    requests.map(Some)
}

/// The list at field `position` of `element`: none when the field holds no list.
fn list_at(element: &Element, position: usize) -> &[Element] {
    match element.get(position) {
        Some(Value::List(entries)) => entries,
        _ => &[],
    }
}

fn request(entry: &Element) -> Result<Request, String> {
    match (entry.first(), entry.get(3), entry.get(4), entry.get(6)) {
        (
            Some(Value::Str(name)),
            Some(Value::Str(text)),
            Some(Value::Double(amount)),
            Some(Value::Ulong(consumable)),
        ) => Ok(Request {
            name: name.clone(),
            text: text.clone(),
            amount: *amount,
            per_job: *consumable == CONSUMABLE_JOB,
            host: None,
            ids: Vec::new(),
        }),
        _ => Err("a resource request without name and value".into()),
    }
}

fn granted_resource(entry: &Element) -> Result<Request, String> {
    match (entry.get(1), entry.get(2), entry.get(5)) {
        (Some(Value::Str(name)), Some(Value::Double(amount)), Some(Value::Str(host))) => {
            let ids: Vec<String> = list_at(entry, 3)
                .iter()
                .filter_map(|id| match id.first() {
                    Some(Value::Str(value)) => Some(value.clone()),
                    _ => None,
                })
                .collect();
            Ok(Request {
                name: name.clone(),
                text: ids.join(" "),
                amount: *amount,
                per_job: false,
                host: Some(host.clone()),
                ids,
            })
        }
        _ => Err("a granted resource without name, amount and host".into()),
    }
}

/// CULL's type codes (`lUlongT`, …) for the letters of [`FORMATS`].
fn type_code(letter: u8) -> Result<u8, String> {
    Ok(match letter {
        b'D' => 2,
        b'U' => 3,
        b'B' => 6,
        b'S' => 8,
        b'L' => 9,
        b'O' => 10,
        b'R' => 11,
        b'H' => 12,
        b'W' => 13,
        other => return Err(format!("no type {:?}", other as char)),
    })
}

/// An element's fields in its descriptor's order.
type Element = Vec<Value>;

#[derive(Debug)]
enum Value {
    Ulong(u32),
    Str(String),
    Double(f64),
    List(Vec<Element>),
    Other,
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    /// Open Cluster Scheduler's layout: an authentication string after the version; no
    /// changed-bits field in an element; a list without count and changed flag, each
    /// element after a 1 and the last followed by a 0.
    ocs: bool,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| format!("cut short at byte {}", self.at))?;
        let bytes = &self.buf[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn count(&mut self) -> Result<usize, String> {
        let n = self.u32()? as usize;
        // Every counted thing takes at least one byte: a count past the end is a bad file,
        // not an allocation to make.
        if n > self.buf.len() - self.at {
            return Err(format!("a count of {n} at byte {}", self.at));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, String> {
        let rest = &self.buf[self.at..];
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or("an unterminated string")?;
        let s = String::from_utf8_lossy(&rest[..len]).into_owned();
        self.at += len + 1;
        Ok(s)
    }

    fn descriptor(&mut self) -> Result<Vec<(u32, u8)>, String> {
        let n = self.count()?;
        (0..n)
            .map(|_| Ok((self.u32()?, (self.u32()? & 0xff) as u8)))
            .collect()
    }

    /// One element; `outer` is the descriptor of its list, unless it carries its own.
    fn element(&mut self, outer: &[(u32, u8)]) -> Result<Element, String> {
        let own;
        let descr = if self.u32()? == FREE_ELEM {
            own = self.descriptor()?;
            &own[..]
        } else {
            outer
        };
        // The changed-bits field: a count of bits and their bytes.
        if !self.ocs {
            let bits = self.count()?;
            self.take(bits.div_ceil(8))?;
        }
        descr.iter().map(|&(_, kind)| self.value(kind)).collect()
    }

    fn value(&mut self, kind: u8) -> Result<Value, String> {
        Ok(match kind {
            2 => {
                let b = self.take(8)?;
                Value::Double(f64::from_be_bytes(b.try_into().expect("8 bytes")))
            }
            3 => Value::Ulong(self.u32()?),
            6 => {
                self.u32()?;
                Value::Other
            }
            8 | 12 => Value::Str(self.string()?),
            9 => Value::List(self.list()?),
            10 => {
                if self.u32()? != 0 {
                    let descr = self.descriptor()?;
                    self.element(&descr)?;
                }
                Value::Other
            }
            11 => Value::Other,
            13 => {
                self.take(8)?;
                Value::Other
            }
            other => return Err(format!("field type {other} at byte {}", self.at)),
        })
    }

    fn list(&mut self) -> Result<Vec<Element>, String> {
        if self.u32()? == 0 {
            return Ok(Vec::new());
        }
        if self.ocs {
            let _name = self.string()?;
            let descr = self.descriptor()?;
            let mut elements = Vec::new();
            loop {
                match self.u32()? {
                    0 => return Ok(elements),
                    1 => elements.push(self.element(&descr)?),
                    other => return Err(format!("{other} where an element or the end was")),
                }
            }
        }
        let n = self.count()?;
        let _name = self.string()?;
        let _changed = self.u32()?;
        let descr = self.descriptor()?;
        (0..n).map(|_| self.element(&descr)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Job 2651 as this cell's execd spooled it: `qsub -l gpu=2 -N myname -v FOO=gpu`.
    const SPOOLED: &[u8] = include_bytes!("../tests/data/packed-job-gpu2");

    #[test]
    fn the_execd_copy_gives_the_hard_requests() {
        let requests = hard_requests(SPOOLED, 2651).unwrap();
        assert_eq!(
            requests.unwrap(),
            vec![Request {
                name: "gpu".into(),
                text: "2".into(),
                amount: 2.0,
                per_job: false,
                host: None,
                ids: Vec::new(),
            }]
        );
    }

    /// Job 24 of the Open Cluster Scheduler 9.1.4 trial cell (host `ocs1`, `complex_values
    /// gpu=4(0 1 2 3)`, an RSMAP): `qsub -l gpu=2`, granted the ids 0 and 1.
    const OCS: &[u8] = include_bytes!("../tests/data/packed-job-ocs-gpu2");

    #[test]
    fn open_cluster_schedulers_copy_gives_the_ids_granted_per_host() {
        let requests = hard_requests(OCS, 24).unwrap().unwrap();
        let gpu: Vec<_> = requests.iter().filter(|r| r.name == "gpu").collect();
        assert_eq!(gpu.len(), 1, "{requests:?}");
        assert_eq!(gpu[0].host.as_deref(), Some("ocs1"));
        assert_eq!(gpu[0].ids, vec!["0", "1"]);
        assert_eq!(gpu[0].amount, 2.0);
        assert!(hard_requests(OCS, 25).is_err());
        assert!(hard_requests(&OCS[..OCS.len() - 1], 24).is_err());
    }

    #[test]
    fn another_jobs_file_is_not_believed() {
        let e = hard_requests(SPOOLED, 2652).unwrap_err();
        assert!(e.contains("not job 2652"), "{e}");
    }

    #[test]
    fn a_file_cut_short_or_extended_is_not_believed() {
        for cut in [0, 7, 100, SPOOLED.len() - 1] {
            assert!(
                hard_requests(&SPOOLED[..cut], 2651).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = SPOOLED.to_vec();
        longer.push(0);
        assert!(
            hard_requests(&longer, 2651)
                .unwrap_err()
                .contains("after the job")
        );
    }

    #[test]
    fn another_formats_file_is_no_grant_and_no_error() {
        let mut other = SPOOLED.to_vec();
        other[4..8].copy_from_slice(&0x1003_0000u32.to_be_bytes());
        assert_eq!(hard_requests(&other, 2651), Ok(None));
    }

    #[test]
    fn no_byte_flipped_anywhere_panics() {
        for i in 0..SPOOLED.len() {
            let mut bad = SPOOLED.to_vec();
            bad[i] ^= 0xff;
            let _ = hard_requests(&bad, 2651);
        }
    }
}
