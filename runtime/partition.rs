//! Partition supervisors: N dynamic supervisors side by side, each child routed to one of them by
//! a key (Elixir's `PartitionSupervisor`).
//!
//! One dynamic supervisor handles its calls one at a time; under many concurrent `start_child`
//! calls it becomes the bottleneck. A [`PartitionSupervisor`] starts N of them (by default one per
//! tokio worker thread) as the children `"0"` … `"N-1"` of a static one_for_one supervisor, and
//! [`PartitionRef::start_child`] sends each start to partition `hash(key) % N`. A partition that
//! exits is restarted by the static supervisor like any child; the others are not touched.
//!
//! Routing hashes the key with the standard library's default hasher, created the same way for
//! every call, so a key always goes to the same partition within a process. As in Elixir, the
//! routing may change between versions: do not persist partition numbers.
//!
//! ```
//! use canopy::dynamic::DynamicSpec;
//! use canopy::partition::PartitionSupervisor;
//! # #[derive(Clone)] struct Session;
//! # impl canopy::ractor::Actor for Session {
//! #     type Msg = (); type State = (); type Arguments = String;
//! #     async fn pre_start(&self, _: canopy::ractor::ActorRef<()>, _: String) -> Result<(), canopy::ractor::ActorProcessingErr> { Ok(()) }
//! # }
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = PartitionSupervisor::new(DynamicSpec::actor(Session))
//!     .partitions(4)
//!     .start()
//!     .await?;
//! let user = "alice".to_string();
//! sessions.start_child(&user, user.clone()).await?; // in partition hash("alice") % 4
//! assert_eq!(sessions.count_children().await?.active, 1);
//! assert_eq!(sessions.partition(&user)?.count_children().await?.active, 1);
//! sessions.shutdown().await;
//! # Ok(()) }
//! ```

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::marker::PhantomData;
use std::time::Duration;

use ractor::{ActorCell, ActorStatus};

use crate::core::{ChildCounts, ChildStatus};
use crate::core::{ChildError, ChildInfo};
use crate::dynamic::{DynamicRef, DynamicSpec, StartArgs};
use crate::introspect;
use crate::shell::{StartError, StartedChild};
use crate::spec::{
    ChildKind, ChildSpec, SpecError, Start, Strategy, SupervisorSpec, DEFAULT_INTENSITY,
    DEFAULT_PERIOD,
};
use crate::supervisor::{spawn_at, spawn_child_supervisor, SupervisorRef};

/// The most partitions a partition supervisor takes: each is a supervisor actor of its own, and
/// partitions beyond the number of cores only add overhead, so a larger number is a mistake.
pub const MAX_PARTITIONS: usize = 4096;

/// The name of a top-level partition supervisor in paths when none is given.
const DEFAULT_NAME: &str = "partitions";

/// A partition supervisor to start: the template of every partition's children, the number of
/// partitions, and the restart budget of the static supervisor that holds the partitions.
///
/// ```
/// use std::time::Duration;
/// use canopy::dynamic::DynamicSpec;
/// use canopy::partition::PartitionSupervisor;
/// use canopy::{SpecError, Start};
/// let template = DynamicSpec::new(|_sup, _job: u64| async { Ok(Start::Ignore) });
/// let parts = PartitionSupervisor::new(template)
///     .partitions(8)
///     .restart_intensity(5, Duration::from_secs(10))
///     .name("jobs");
/// assert!(parts.validate().is_ok());
/// assert_eq!(parts.partitions(0).validate(), Err(SpecError::ZeroPartitions));
/// ```
pub struct PartitionSupervisor<A> {
    template: DynamicSpec<A>,
    partitions: Option<usize>,
    intensity: u32,
    period: Duration,
    name: Option<String>,
}

impl<A> Clone for PartitionSupervisor<A> {
    fn clone(&self) -> Self {
        PartitionSupervisor {
            template: self.template.clone(),
            partitions: self.partitions,
            intensity: self.intensity,
            period: self.period,
            name: self.name.clone(),
        }
    }
}

impl<A> fmt::Debug for PartitionSupervisor<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionSupervisor")
            .field("template", &self.template)
            .field("partitions", &self.partitions)
            .field("intensity", &self.intensity)
            .field("period", &self.period)
            .field("name", &self.name)
            .finish()
    }
}

impl<A: StartArgs> PartitionSupervisor<A> {
    /// Partitions of `template`, one per tokio worker thread, under a supervisor allowing Elixir's
    /// default 3 partition restarts in 5 s.
    pub fn new(template: DynamicSpec<A>) -> Self {
        PartitionSupervisor {
            template,
            partitions: None,
            intensity: DEFAULT_INTENSITY,
            period: DEFAULT_PERIOD,
            name: None,
        }
    }

    /// Sets the number of partitions (default: the number of tokio worker threads at start, as
    /// Elixir defaults to the number of schedulers).
    pub fn partitions(mut self, n: usize) -> Self {
        self.partitions = Some(n);
        self
    }

    /// The restart budget of the static supervisor that restarts partitions (each partition has
    /// its own budget for its children, from the template).
    pub fn restart_intensity(mut self, intensity: u32, period: Duration) -> Self {
        self.intensity = intensity;
        self.period = period;
        self
    }

    /// Names a top-level partition supervisor in introspection paths (`/<name>`, `partitions` by
    /// default); a partition is then `/<name>/<index>`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Checks the number of partitions, the budget and the template.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.partitions == Some(0) {
            return Err(SpecError::ZeroPartitions);
        }
        if let Some(n) = self.partitions.filter(|&n| n > MAX_PARTITIONS) {
            return Err(SpecError::TooManyPartitions(n));
        }
        if let Some(name) = &self.name {
            crate::spec::check_name(name)?;
        }
        if self.period.is_zero() {
            return Err(SpecError::ZeroPeriod);
        }
        self.template.validate()
    }

    /// Starts an unlinked (top-level) partition supervisor with every partition running.
    pub async fn start(self) -> Result<PartitionRef<A>, StartError> {
        self.validate().map_err(StartError::Spec)?;
        let (spec, n) = self.supervisor_spec();
        let name = self.name.as_deref().unwrap_or(DEFAULT_NAME);
        let sup = spawn_at(spec, None, name, self.name.is_some()).await?;
        Ok(PartitionRef::new(sup, n))
    }

    /// Starts a partition supervisor linked to `parent`.
    pub async fn start_linked(self, parent: ActorCell) -> Result<PartitionRef<A>, StartError> {
        self.validate().map_err(StartError::Spec)?;
        let name = self.name.as_deref().unwrap_or(DEFAULT_NAME);
        let (spec, n) = self.supervisor_spec();
        let sup = spawn_at(spec, Some(parent), name, self.name.is_some()).await?;
        Ok(PartitionRef::new(sup, n))
    }

    /// The partition supervisor as a child of a static supervisor (kind `Supervisor`, shutdown
    /// `Infinity`). Reach its API with [`PartitionRef::from_cell`].
    ///
    /// ```
    /// use canopy::dynamic::DynamicSpec;
    /// use canopy::partition::{PartitionRef, PartitionSupervisor};
    /// use canopy::{Start, Supervisor, SupervisorSpec};
    /// # #[tokio::main] async fn main() {
    /// let parts = PartitionSupervisor::new(DynamicSpec::new(|_s, _n: u8| async { Ok(Start::Ignore) }))
    ///     .partitions(2);
    /// let root = Supervisor::start(SupervisorSpec::default().child(parts.child_spec("parts")))
    ///     .await
    ///     .unwrap();
    /// let cell = root.which_child("parts").await.unwrap().status.pid().cloned().unwrap();
    /// let parts: PartitionRef<u8> = PartitionRef::from_cell(cell).unwrap();
    /// assert_eq!(parts.partitions(), 2);
    /// root.shutdown().await;
    /// # }
    /// ```
    pub fn child_spec(self, id: impl Into<String>) -> ChildSpec {
        let id: String = id.into();
        let name = id.clone();
        ChildSpec::new(id, move |sup: ActorCell| {
            let this = self.clone();
            let name = name.clone();
            async move {
                this.validate().map_err(StartError::Spec)?;
                let (spec, _) = this.supervisor_spec();
                let child = spawn_child_supervisor(spec, sup, &name).await?;
                Ok(Start::from(child.cell()))
            }
        })
        .kind(ChildKind::Supervisor)
    }

    /// The static supervisor's spec, and the number of partitions in it.
    fn supervisor_spec(&self) -> (SupervisorSpec, usize) {
        let n = self.partitions.unwrap_or_else(default_partitions);
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .restart_intensity(self.intensity, self.period)
            .children((0..n).map(|i| ChildSpec::dynamic(i.to_string(), self.template.clone())));
        (spec, n)
    }
}

/// One partition per tokio worker thread (1 on a current-thread runtime or outside one).
fn default_partitions() -> usize {
    tokio::runtime::Handle::try_current()
        .map(|h| h.metrics().num_workers())
        .unwrap_or(1)
        .max(1)
}

/// A reference to a running partition supervisor: routes child management calls to the partitions.
///
/// Partitions are looked up in the introspection tree at each call (no message round trip), so a
/// partition that was restarted is found under its new cell. While a partition is restarting,
/// calls routed to it return [`Restarting`](crate::core::ChildError::Restarting) or
/// [`SupervisorDown`](crate::core::ChildError::SupervisorDown).
///
/// ```
/// use canopy::{dynamic::DynamicSpec, partition::PartitionSupervisor, Start};
/// # #[tokio::main] async fn main() -> Result<(), canopy::ChildError> {
/// let parts = PartitionSupervisor::new(DynamicSpec::new(|_s, _n: u32| async { Ok(Start::Ignore) }))
///     .partitions(3)
///     .start()
///     .await
///     .unwrap();
/// for user_id in 0..10u32 {
///     parts.start_child(&user_id, user_id).await?;
/// }
/// let counts = parts.count_children().await?;
/// assert_eq!((counts.specs, counts.active), (3, 0)); // three templates; every start ignored
/// let p = parts.partition_of(&7u32);
/// assert_eq!(parts.partition(&7u32)?.id(), parts.partition_at(p)?.id());
/// parts.shutdown().await;
/// # Ok(()) }
/// ```
pub struct PartitionRef<A> {
    sup: SupervisorRef,
    n: usize,
    _args: PhantomData<fn() -> A>,
}

impl<A> Clone for PartitionRef<A> {
    fn clone(&self) -> Self {
        PartitionRef {
            sup: self.sup.clone(),
            n: self.n,
            _args: PhantomData,
        }
    }
}

impl<A> fmt::Debug for PartitionRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionRef")
            .field("supervisor", &self.sup)
            .field("partitions", &self.n)
            .finish()
    }
}

impl<A: StartArgs> PartitionRef<A> {
    fn new(sup: SupervisorRef, n: usize) -> Self {
        PartitionRef {
            sup,
            n,
            _args: PhantomData,
        }
    }

    /// The partition supervisor behind `cell`, if `cell` is a static supervisor whose children are
    /// exactly the partitions `"0"` … `"N-1"`, dynamic supervisors of `A`.
    pub fn from_cell(cell: ActorCell) -> Option<PartitionRef<A>> {
        let sup = SupervisorRef::from_cell(cell.clone())?;
        let children = introspect::children_of(&cell)?;
        let n = children.len();
        let all_partitions = n > 0
            && children.iter().all(|c| {
                c.id.parse::<usize>().is_ok_and(|i| i < n)
                    && c.status
                        .pid()
                        .is_none_or(|p| DynamicRef::<A>::from_cell(p.clone()).is_some())
            });
        all_partitions.then(|| PartitionRef::new(sup, n))
    }

    /// The number of partitions.
    pub fn partitions(&self) -> usize {
        self.n
    }

    /// The partition `key` goes to: `hash(key) % N`.
    ///
    /// ```
    /// # async fn demo(parts: canopy::partition::PartitionRef<u32>) {
    /// let i = parts.partition_of("alice");
    /// assert!(i < parts.partitions());
    /// assert_eq!(i, parts.partition_of("alice"));
    /// # }
    /// ```
    pub fn partition_of<K: Hash + ?Sized>(&self, key: &K) -> usize {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        (hasher.finish() % self.n as u64) as usize
    }

    /// The dynamic supervisor `key` goes to.
    pub fn partition<K: Hash + ?Sized>(&self, key: &K) -> Result<DynamicRef<A>, ChildError> {
        self.partition_at(self.partition_of(key))
    }

    /// Partition number `index` (`0..N`).
    pub fn partition_at(&self, index: usize) -> Result<DynamicRef<A>, ChildError> {
        let id = index.to_string();
        let children =
            introspect::children_of(&self.sup.cell()).ok_or(ChildError::SupervisorDown)?;
        let child = children
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| ChildError::NotFound(id.clone()))?;
        match child.status {
            ChildStatus::Running(cell) => {
                DynamicRef::from_cell(cell).ok_or(ChildError::NotFound(id))
            }
            ChildStatus::Restarting => Err(ChildError::Restarting(id)),
            ChildStatus::Stopped => Err(ChildError::NotFound(id)),
        }
    }

    /// Starts a child with `args` in the partition `key` goes to. See
    /// [`DynamicRef::start_child`].
    pub async fn start_child<K: Hash + ?Sized>(
        &self,
        key: &K,
        args: A,
    ) -> Result<StartedChild, ChildError> {
        self.partition(key)?.start_child(args).await
    }

    /// Stops a child of any partition and forgets it: `Ok` for an actor that is already dead,
    /// [`NotFound`](crate::core::ChildError::NotFound) for a live actor that is not a child of a
    /// partition.
    pub async fn terminate_child(&self, child: &ActorCell) -> Result<(), ChildError> {
        let parent = child.try_get_supervisor().map(|p| p.get_id());
        for index in 0..self.n {
            if let Ok(partition) = self.partition_at(index) {
                if Some(partition.id()) == parent {
                    return partition.terminate_child(child).await;
                }
            }
        }
        if child.get_status() == ActorStatus::Stopped {
            Ok(())
        } else {
            Err(ChildError::NotFound(format!("{child:?}")))
        }
    }

    /// Every child of every partition, partition by partition, each newest first. A child's `id`
    /// is `"<partition>/<key>"`, its path below the partition supervisor. A partition that is
    /// restarting has no children and is skipped.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, ChildError> {
        let mut all = Vec::new();
        for index in 0..self.n {
            let Some(partition) = self.live_partition(index)? else {
                continue;
            };
            let Ok(children) = partition.which_children().await else {
                continue;
            };
            all.extend(children.into_iter().map(|mut c| {
                c.id = format!("{index}/{}", c.id);
                c
            }));
        }
        Ok(all)
    }

    /// The partitions' counts added up: `specs` is the number of running partitions (one template
    /// each), `active` every running child, `workers`/`supervisors` every child by kind.
    pub async fn count_children(&self) -> Result<ChildCounts, ChildError> {
        let mut total = ChildCounts::default();
        for index in 0..self.n {
            let Some(partition) = self.live_partition(index)? else {
                continue;
            };
            let Ok(c) = partition.count_children().await else {
                continue;
            };
            total.specs += c.specs;
            total.active += c.active;
            total.supervisors += c.supervisors;
            total.workers += c.workers;
        }
        Ok(total)
    }

    /// A running partition, `None` while it restarts; `SupervisorDown` if the whole partition
    /// supervisor is gone.
    fn live_partition(&self, index: usize) -> Result<Option<DynamicRef<A>>, ChildError> {
        match self.partition_at(index) {
            Ok(p) => Ok(Some(p)),
            Err(ChildError::SupervisorDown) => Err(ChildError::SupervisorDown),
            Err(_) => Ok(None),
        }
    }

    /// The static supervisor that holds the partitions.
    pub fn supervisor(&self) -> &SupervisorRef {
        &self.sup
    }

    /// The partition supervisor's cell.
    pub fn cell(&self) -> ActorCell {
        self.sup.cell()
    }

    /// Stops every partition (each stops its children at once), then the partition supervisor,
    /// and waits until it is gone.
    pub async fn shutdown(&self) {
        self.sup.shutdown().await
    }

    /// Waits until the partition supervisor has exited.
    pub async fn wait(&self) {
        self.sup.wait().await
    }
}
