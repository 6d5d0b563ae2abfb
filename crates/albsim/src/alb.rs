//! The load balancer as a whole: starting it, taking a new configuration, and answering what
//! DescribeTargetHealth would.
//!
//! A new configuration is reported at once (a deregistered target shows `draining`, a
//! registered one `initial` / `Elb.RegistrationInProgress`, as the API does right after the
//! call) and reaches the data plane after the propagation delay: rules and weights switch,
//! draining targets stop getting new requests, new targets start their health checks.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use crate::access::{AccessRecord, AccessSink};
use crate::clock::Clock;
use crate::config::{AlbConfig, TargetGroup, TargetType};
use crate::error::AlbError;
use crate::health::{self, TargetHealthDescription};
use crate::resolve::{Resolver, is_loopback_v4};
use crate::routing::ListenerRoutes;
use crate::runtime_api::RuntimeApi;
use crate::targets::{GroupState, TargetState};
use crate::upstream::Pool;

/// How the load balancer runs, beside what the ELBv2 API configures.
#[derive(Clone)]
pub struct AlbOptions {
    /// Maps targets to loopback addresses.
    pub resolver: Resolver,
    /// Simulated seconds per real second (1 = real time); every interval, delay and timeout
    /// below and in the configuration is in simulated time.
    pub time_scale: f64,
    /// How long a change takes to reach the data plane. ELBv2 is eventually consistent: the
    /// API call returns before the load balancer nodes act on it, and AWS gives no figure for
    /// the lag; registrations are commonly seen to take effect within a few seconds, so 5 s.
    pub propagation_delay: Duration,
    /// "The load balancer failed to establish a connection to the target before the
    /// connection timeout expired (10 seconds)" (load-balancer-troubleshooting.html, HTTP 504).
    pub connect_timeout: Duration,
    /// A function's timeout when `lambda_timeouts` does not name it: Lambda's default, "3
    /// seconds" (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html>).
    pub lambda_timeout: Duration,
    /// Timeouts of particular functions, by ARN.
    pub lambda_timeouts: HashMap<String, Duration>,
    /// The local port for an ALB listener port; absent or 0 binds an ephemeral port.
    pub listener_ports: HashMap<u16, u16>,
    /// Where per-request records go (dropped when the channel is full).
    pub access_log: Option<mpsc::Sender<AccessRecord>>,
}

impl AlbOptions {
    pub fn new(resolver: Resolver) -> Self {
        Self {
            resolver,
            time_scale: 1.0,
            propagation_delay: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            lambda_timeout: Duration::from_secs(3),
            lambda_timeouts: HashMap::new(),
            listener_ports: HashMap::new(),
            access_log: None,
        }
    }
}

/// What the data plane serves now.
struct Active {
    routes: Arc<HashMap<u16, Arc<ListenerRoutes>>>,
    idle_timeout_seconds: u64,
    /// Every group known, those whose creation has not propagated yet included.
    groups: HashMap<String, Arc<GroupState>>,
    in_use: HashSet<String>,
}

/// State shared by the listeners, the health checkers and the control side.
pub(crate) struct Shared {
    pub clock: Clock,
    pub resolver: Resolver,
    pub options: AlbOptions,
    pub pool: Pool,
    pub access: AccessSink,
    pub shutdown: watch::Receiver<bool>,
    active: Mutex<Active>,
    lambdas: Mutex<HashMap<String, Arc<RuntimeApi>>>,
    listeners: Mutex<HashMap<u16, (SocketAddr, AbortHandle)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn routes(&self, listener_port: u16) -> Option<Arc<ListenerRoutes>> {
        lock(&self.active).routes.get(&listener_port).cloned()
    }

    pub fn group(&self, arn: &str) -> Option<Arc<GroupState>> {
        lock(&self.active).groups.get(arn).cloned()
    }

    /// The idle timeout, in real time.
    pub fn idle_timeout(&self) -> Duration {
        self.clock.secs(lock(&self.active).idle_timeout_seconds)
    }

    pub fn connect_timeout(&self) -> Duration {
        self.clock.real(self.options.connect_timeout)
    }

    pub fn runtime_api(&self, function_arn: &str) -> Option<Arc<RuntimeApi>> {
        lock(&self.lambdas).get(function_arn).cloned()
    }

    async fn ensure_runtime_apis(&self, config: &AlbConfig) -> Result<(), AlbError> {
        for tg in config
            .target_groups
            .iter()
            .filter(|tg| tg.target_type == TargetType::Lambda)
        {
            for target in &tg.targets {
                if lock(&self.lambdas).contains_key(&target.id) {
                    continue;
                }
                let timeout = self
                    .options
                    .lambda_timeouts
                    .get(&target.id)
                    .copied()
                    .unwrap_or(self.options.lambda_timeout);
                let api = RuntimeApi::start(target.id.clone(), self.clock.real(timeout)).await?;
                lock(&self.lambdas).entry(target.id.clone()).or_insert(api);
            }
        }
        Ok(())
    }
}

/// A change on its way to the data plane.
struct Change {
    due: Instant,
    config: AlbConfig,
    activate: Vec<(Arc<GroupState>, Arc<TargetState>)>,
    drain: Vec<(Arc<GroupState>, Arc<TargetState>, Instant)>,
}

/// A running load balancer. Dropping it stops everything it started.
pub struct Alb {
    shared: Arc<Shared>,
    changes: mpsc::UnboundedSender<Change>,
    applier: AbortHandle,
    shutdown: watch::Sender<bool>,
}

impl Alb {
    /// Validates `config`, binds one loopback listener per ALB listener and starts health
    /// checking every registered target. Must be called within a Tokio runtime.
    pub async fn start(config: AlbConfig, options: AlbOptions) -> Result<Alb, AlbError> {
        config.validate()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let clock = Clock::new(options.time_scale);
        let shared = Arc::new(Shared {
            clock,
            resolver: options.resolver.clone(),
            access: AccessSink::new(options.access_log.clone()),
            options,
            pool: Pool::default(),
            shutdown: shutdown_rx,
            active: Mutex::new(Active {
                routes: Arc::new(HashMap::new()),
                idle_timeout_seconds: config.attributes.idle_timeout_seconds,
                groups: HashMap::new(),
                in_use: HashSet::new(),
            }),
            lambdas: Mutex::new(HashMap::new()),
            listeners: Mutex::new(HashMap::new()),
        });
        shared.ensure_runtime_apis(&config).await?;
        let mut activate = Vec::new();
        {
            let mut active = lock(&shared.active);
            for tg in &config.target_groups {
                let group = Arc::new(GroupState::new(Arc::new(tg.clone())));
                for target in &tg.targets {
                    if let Some(state) = group.register(tg.key_of(target), target.clone()) {
                        activate.push((group.clone(), state));
                    }
                }
                active.groups.insert(tg.target_group_arn.clone(), group);
            }
        }
        install_routes(&shared, &config)?;
        for (group, target) in activate {
            health::start(&shared, group, target);
        }
        let (changes, rx) = mpsc::unbounded_channel();
        let applier = tokio::spawn(run_changes(Arc::downgrade(&shared), rx)).abort_handle();
        let alb = Alb {
            shared,
            changes,
            applier,
            shutdown: shutdown_tx,
        };
        alb.bind_listeners(&config).await?;
        Ok(alb)
    }

    /// The base URL of ALB listener `listener_port`, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self, listener_port: u16) -> Option<String> {
        self.local_addr(listener_port)
            .map(|a| format!("http://{a}"))
    }

    /// The loopback address serving ALB listener `listener_port`.
    pub fn local_addr(&self, listener_port: u16) -> Option<SocketAddr> {
        lock(&self.shared.listeners)
            .get(&listener_port)
            .map(|(a, _)| *a)
    }

    /// The `AWS_LAMBDA_RUNTIME_API` value (`127.0.0.1:<port>`) for a function registered as a
    /// target.
    pub fn runtime_api_addr(&self, function_arn: &str) -> Option<SocketAddr> {
        self.shared.runtime_api(function_arn).map(|api| api.addr())
    }

    /// The runtime API of a function registered as a target (what a Lambda service stand-in
    /// watches to start the function's processes).
    pub fn runtime_api(&self, function_arn: &str) -> Option<Arc<RuntimeApi>> {
        self.shared.runtime_api(function_arn)
    }

    /// What DescribeTargetHealth reports for the group's targets; `None` for an unknown group.
    pub fn target_health(&self, target_group_arn: &str) -> Option<Vec<TargetHealthDescription>> {
        let (group, in_use) = {
            let active = lock(&self.shared.active);
            (
                active.groups.get(target_group_arn).cloned()?,
                active.in_use.contains(target_group_arn),
            )
        };
        let config = group.config();
        Some(
            group
                .targets()
                .iter()
                .map(|t| health::describe(&config, t, in_use))
                .collect(),
        )
    }

    /// Takes a new configuration: reported at once, served after the propagation delay.
    /// Removed targets drain for their group's deregistration delay; added targets start in
    /// `initial`.
    pub async fn apply(&self, config: AlbConfig) -> Result<(), AlbError> {
        config.validate()?;
        if *self.shutdown.borrow() {
            return Err(AlbError::Stopped);
        }
        self.shared.ensure_runtime_apis(&config).await?;
        let now = Instant::now();
        let mut activate = Vec::new();
        let mut drain = Vec::new();
        {
            let mut active = lock(&self.shared.active);
            for tg in &config.target_groups {
                let group = active
                    .groups
                    .entry(tg.target_group_arn.clone())
                    .or_insert_with(|| Arc::new(GroupState::new(Arc::new(tg.clone()))))
                    .clone();
                let wanted: HashSet<_> = tg.targets.iter().map(|t| tg.key_of(t)).collect();
                for target in &tg.targets {
                    if let Some(state) = group.register(tg.key_of(target), target.clone()) {
                        activate.push((group.clone(), state));
                    }
                }
                // "Elastic Load Balancing waits [the deregistration delay] before completing
                // the deregistration process, which can help in-flight requests to the target
                // to complete."
                // <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-target-group-attributes.html#deregistration-delay>
                let delay = self
                    .shared
                    .clock
                    .secs(tg.attributes.deregistration_delay_seconds);
                for state in group.targets() {
                    if wanted.contains(&state.key) || state.record().deregistering {
                        continue;
                    }
                    state.update(|rec| rec.deregistering = true);
                    drain.push((group.clone(), state, now + delay));
                }
            }
        }
        self.bind_listeners(&config).await?;
        let due = now
            + self
                .shared
                .clock
                .real(self.shared.options.propagation_delay);
        self.changes
            .send(Change {
                due,
                config,
                activate,
                drain,
            })
            .map_err(|_| AlbError::Stopped)
    }

    /// Stops the listeners, health checks and runtime APIs and closes client connections.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        self.applier.abort();
        for (_, (_, handle)) in lock(&self.shared.listeners).drain() {
            handle.abort();
        }
        for (_, group) in lock(&self.shared.active).groups.drain() {
            group.clear();
        }
        for (_, api) in lock(&self.shared.lambdas).drain() {
            api.stop();
        }
    }

    async fn bind_listeners(&self, config: &AlbConfig) -> Result<(), AlbError> {
        for listener in &config.listeners {
            if lock(&self.shared.listeners).contains_key(&listener.port) {
                continue;
            }
            let local_port = self
                .shared
                .options
                .listener_ports
                .get(&listener.port)
                .copied()
                .unwrap_or(0);
            let bind = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), local_port);
            if !is_loopback_v4(&bind) {
                return Err(AlbError::NotLoopback { addr: bind });
            }
            let tcp = TcpListener::bind(bind)
                .await
                .map_err(|source| AlbError::Bind { addr: bind, source })?;
            let addr = tcp
                .local_addr()
                .map_err(|source| AlbError::Bind { addr: bind, source })?;
            let handle = tokio::spawn(crate::front::accept_loop(
                Arc::downgrade(&self.shared),
                listener.port,
                tcp,
            ))
            .abort_handle();
            lock(&self.shared.listeners).insert(listener.port, (addr, handle));
        }
        Ok(())
    }
}

impl Drop for Alb {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Compiles `config`'s rules and makes them, its idle timeout and its groups' settings the
/// data plane's; groups no longer configured are dropped.
fn install_routes(shared: &Shared, config: &AlbConfig) -> Result<(), AlbError> {
    let by_arn: std::collections::BTreeMap<&str, &TargetGroup> = config
        .target_groups
        .iter()
        .map(|tg| (tg.target_group_arn.as_str(), tg))
        .collect();
    let mut routes = HashMap::new();
    let mut in_use = HashSet::new();
    for listener in &config.listeners {
        let compiled = ListenerRoutes::compile(listener, &by_arn)?;
        in_use.extend(compiled.target_groups().map(str::to_string));
        routes.insert(listener.port, Arc::new(compiled));
    }
    let mut active = lock(&shared.active);
    active.routes = Arc::new(routes);
    active.in_use = in_use;
    active.idle_timeout_seconds = config.attributes.idle_timeout_seconds;
    let gone: Vec<String> = active
        .groups
        .keys()
        .filter(|arn| !by_arn.contains_key(arn.as_str()))
        .cloned()
        .collect();
    for arn in gone {
        if let Some(group) = active.groups.remove(&arn) {
            group.clear();
        }
    }
    for (arn, tg) in by_arn {
        if let Some(group) = active.groups.get(arn) {
            group.set_config(Arc::new(tg.clone()));
        }
    }
    Ok(())
}

/// Applies changes in the order they were made, each when its propagation delay is over.
async fn run_changes(shared: std::sync::Weak<Shared>, mut rx: mpsc::UnboundedReceiver<Change>) {
    while let Some(change) = rx.recv().await {
        tokio::time::sleep_until(change.due.into()).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let listeners_now: HashSet<u16> = change.config.listeners.iter().map(|l| l.port).collect();
        if let Err(e) = install_routes(&shared, &change.config) {
            tracing::error!(error = %e, "a validated configuration failed to compile");
        }
        lock(&shared.listeners).retain(|port, (_, handle)| {
            let keep = listeners_now.contains(port);
            if !keep {
                handle.abort();
            }
            keep
        });
        for (group, target) in change.activate {
            if !target.record().deregistering {
                health::start(&shared, group, target);
            }
        }
        for (group, target, until) in change.drain {
            target.stop_checker();
            target.update(|rec| rec.drained = true);
            let key = target.key.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(until.into()).await;
                group.remove(&key);
            });
        }
    }
}
