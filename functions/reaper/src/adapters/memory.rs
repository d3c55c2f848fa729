//! An in-memory `Fleet` (feature `test-util`): the sweep's unit tests, reaperctl's tests and the
//! benchmark run the real run code against it. It keeps the port's contract: every id answered,
//! `NotAttempted` past the deadline, `Lost` when told to lose an answer (after acting).

use crate::policy::price::Volume;
use crate::policy::{Instance, InstanceState};
use crate::ports::{ApiError, Deadline, ErrorKind, Fleet, IdOutcome, Mutation, VOLUMES_PER_CALL};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

type Edit = Box<dyn FnOnce(&mut BTreeMap<String, Instance>) + Send>;

#[derive(Default)]
pub struct MemoryFleet {
    instances: Mutex<BTreeMap<String, Instance>>,
    calls: Mutex<BTreeMap<String, u64>>,
    after_first_list: Mutex<Option<Edit>>,
    /// (operation, id): the instance refuses, as a protected one does.
    refused: Mutex<BTreeSet<(&'static str, String)>>,
    /// Operations whose answer is lost after they took effect (a reset after forwarding).
    lost: Mutex<BTreeSet<&'static str>>,
    /// EBS volumes by id, for the ledger of savings.
    volumes: Mutex<BTreeMap<String, Volume>>,
}

impl MemoryFleet {
    pub fn new(instances: impl IntoIterator<Item = Instance>) -> Self {
        Self {
            instances: Mutex::new(instances.into_iter().map(|i| (i.id.clone(), i)).collect()),
            ..Self::default()
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds EBS volumes the fleet describes (their ids are those the instances' billing names).
    pub fn with_volumes(self, volumes: impl IntoIterator<Item = Volume>) -> Self {
        Self::lock(&self.volumes).extend(volumes.into_iter().map(|v| (v.volume_id.clone(), v)));
        self
    }

    /// The instance as the fleet holds it now.
    pub fn get(&self, id: &str) -> Option<Instance> {
        Self::lock(&self.instances).get(id).cloned()
    }

    /// Runs `edit` on the fleet right after the first listing (someone edits tags mid-run).
    pub fn after_first_list(
        &self,
        edit: impl FnOnce(&mut BTreeMap<String, Instance>) + Send + 'static,
    ) {
        *Self::lock(&self.after_first_list) = Some(Box::new(edit));
    }

    /// Changes the fleet between runs (a person edits tags, an instance launches).
    pub fn edit(&self, edit: impl FnOnce(&mut BTreeMap<String, Instance>)) {
        edit(&mut Self::lock(&self.instances));
    }

    /// `operation` ("TerminateInstances", ...) on `id` fails with OperationNotPermitted.
    pub fn refuse(&self, operation: &'static str, id: &str) {
        Self::lock(&self.refused).insert((operation, id.to_string()));
    }

    /// `operation` takes effect but its answer is lost (as after a connection reset).
    pub fn lose_answers(&self, operation: &'static str) {
        Self::lock(&self.lost).insert(operation);
    }

    pub fn calls(&self, operation: &str) -> u64 {
        Self::lock(&self.calls).get(operation).copied().unwrap_or(0)
    }

    pub fn mutating_calls(&self) -> u64 {
        ["TerminateInstances", "StopInstances", "CreateTags"]
            .iter()
            .map(|op| self.calls(op))
            .sum()
    }

    fn count(&self, operation: &str) {
        *Self::lock(&self.calls).entry(operation.into()).or_default() += 1;
    }

    fn change(instance: &mut Instance, mutation: Mutation<'_>) {
        match mutation {
            Mutation::Terminate => instance.state = InstanceState::ShuttingDown,
            Mutation::Stop => instance.state = InstanceState::Stopping,
            Mutation::Tag(tags) => instance.tags.extend(tags.iter().cloned()),
        }
    }
}

/// Instances per page, as `adapters::ec2` asks EC2 for them.
const PAGE: usize = 1000;

impl Fleet for MemoryFleet {
    async fn volumes(&self, ids: &[String], _deadline: Deadline) -> Result<Vec<Volume>, ApiError> {
        let volumes = Self::lock(&self.volumes);
        let mut out = Vec::new();
        for chunk in ids.chunks(VOLUMES_PER_CALL) {
            self.count("DescribeVolumes");
            out.extend(chunk.iter().filter_map(|id| volumes.get(id).cloned()));
        }
        Ok(out)
    }

    async fn list_pages(
        &self,
        ids: Option<&[&str]>,
        _deadline: Deadline,
        on_page: &mut (dyn FnMut(Vec<Instance>) + Send),
    ) -> Result<(), ApiError> {
        self.count("DescribeInstances");
        let out: Vec<Instance> = Self::lock(&self.instances)
            .values()
            .filter(|i| InstanceState::JUDGED.contains(&i.state))
            .filter(|i| ids.is_none_or(|ids| ids.contains(&i.id.as_str())))
            .cloned()
            .collect();
        if let Some(edit) = Self::lock(&self.after_first_list).take() {
            edit(&mut Self::lock(&self.instances));
        }
        // Pages of EC2's size, so a sweep sees more than one.
        for page in out.chunks(PAGE) {
            on_page(page.to_vec());
        }
        Ok(())
    }

    async fn apply(
        &self,
        mutation: Mutation<'_>,
        ids: &[String],
        deadline: Deadline,
    ) -> Vec<(String, IdOutcome)> {
        if !deadline.has_time() {
            return ids
                .iter()
                .map(|id| (id.clone(), IdOutcome::NotAttempted))
                .collect();
        }
        let op = mutation.operation();
        self.count(op);
        let lost = Self::lock(&self.lost).contains(op);
        let refused = Self::lock(&self.refused).clone();
        let mut all = Self::lock(&self.instances);
        ids.iter()
            .map(|id| {
                if refused.contains(&(op, id.clone())) {
                    let err = ApiError::new(
                        "OperationNotPermitted",
                        format!("The instance '{id}' may not be changed by {op}"),
                        ErrorKind::Protected,
                    );
                    return (id.clone(), IdOutcome::Failed(err));
                }
                let Some(instance) = all.get_mut(id) else {
                    let err = ApiError::new(
                        "InvalidInstanceID.NotFound",
                        format!("The instance ID '{id}' does not exist"),
                        ErrorKind::Instance,
                    );
                    return (id.clone(), IdOutcome::Failed(err));
                };
                Self::change(instance, mutation);
                let outcome = if lost {
                    IdOutcome::Lost(ApiError::new(
                        "Transport",
                        "connection reset by peer",
                        ErrorKind::Lost,
                    ))
                } else {
                    IdOutcome::Done
                };
                (id.clone(), outcome)
            })
            .collect()
    }

    fn api_calls(&self) -> BTreeMap<String, u64> {
        Self::lock(&self.calls).clone()
    }
}
