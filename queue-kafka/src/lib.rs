//! The Kafka transport of the job queue (rdkafka), behind the `jobs` crate's traits; the only crate that knows
//! Kafka. The Kafka transport: workers form one consumer group on the jobs topic; results go to a compacted
//! topic keyed by job id; undecodable messages go to the dead-letter topic with the reason in a header.
//!
//! At least once: offsets are stored only for jobs whose result the broker has acknowledged
//! (`enable.auto.offset.store=false`), and only up to the lowest job still in flight in each partition, so jobs
//! run concurrently yet are committed in order.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobs::protocol::{Job, JobResult};
use jobs::queue::{Delivery, Position, QueueError, Submitter, WorkerQueue};
use jobs::{metric, Fanout};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;

/// How a consumer group moves partitions when a member joins or leaves (librdkafka's
/// `partition.assignment.strategy`). Every member of one group must use the same (librdkafka does not list an
/// eager and a cooperative strategy together), so switching a running group is a stop and a start of all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Assignment {
    /// `range,roundrobin`, librdkafka's default: every change revokes every partition of every member first
    /// (the whole group stops until it has rejoined).
    #[default]
    Eager,
    /// `cooperative-sticky`: only the partitions that move are revoked; the rest keep being consumed.
    Cooperative,
}

impl Assignment {
    pub fn strategy(self) -> &'static str {
        match self {
            Assignment::Eager => "range,roundrobin",
            Assignment::Cooperative => "cooperative-sticky",
        }
    }
}

/// Topic names, creation settings and client settings.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub bootstrap: String,
    pub group_id: String,
    pub client_id: String,
    pub jobs_topic: String,
    pub results_topic: String,
    pub dlq_topic: String,
    /// The webhook deliveries' states (compacted), written by notifiers, read by gateways.
    pub deliveries_topic: String,
    /// Partitions of the jobs topic when this process creates it.
    pub partitions: i32,
    pub replication: i32,
    /// How long the group waits for a silent member before giving its partitions to others.
    pub session_timeout_ms: u32,
    /// A worker's static group membership (`group.instance.id`): a worker started again under the same id
    /// within the session timeout takes back its predecessor's partitions without a rebalance of the group.
    pub group_instance_id: Option<String>,
    /// How the group hands out partitions when its members change (default: eager).
    pub assignment: Assignment,
    /// How long a publish may wait for the broker's acknowledgement before it counts as failed (default 30 s).
    pub send_timeout: Duration,
    /// How long closing a worker's connection (final commit, leaving the group, flush) may take (default 15 s).
    pub close_timeout: Duration,
    /// Messages each subscriber of a submitter may have unread before reading the results topic waits for it
    /// (default 4,096).
    pub subscriber_buffer: usize,
    /// Extra librdkafka settings (security, tuning), applied last.
    pub extra: Vec<(String, String)>,
}

impl KafkaConfig {
    pub fn new(bootstrap: &str) -> KafkaConfig {
        KafkaConfig {
            bootstrap: bootstrap.to_owned(),
            group_id: "assay-workers".into(),
            client_id: format!("assay-{}", std::process::id()),
            jobs_topic: jobs::protocol::JOBS.into(),
            results_topic: jobs::protocol::RESULTS.into(),
            dlq_topic: jobs::protocol::DEAD_LETTERS.into(),
            deliveries_topic: jobs::protocol::WEBHOOK_DELIVERIES.into(),
            partitions: 12,
            replication: 1,
            session_timeout_ms: 10_000,
            group_instance_id: None,
            assignment: Assignment::Eager,
            send_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(15),
            subscriber_buffer: 4096,
            extra: Vec::new(),
        }
    }

    fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap).set("client.id", &self.client_id);
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c
    }

    /// A consumer's settings. Brokers that do not answer a waiting fetch as soon as data arrives (librdkafka's
    /// mock cluster, tansu) hold it for `fetch.wait.max.ms`, 500 ms by default, on each of the pipeline's two
    /// hops; 100 ms bounds that wait at the cost of more idle fetches. Kafka itself answers on arrival.
    fn consumer_client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap).set("client.id", &self.client_id).set("fetch.wait.max.ms", "100");
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c
    }

    fn producer(&self) -> Result<FutureProducer, QueueError> {
        let mut c = self.client();
        c.set("enable.idempotence", "true").set("acks", "all").set("message.timeout.ms", "60000").set("linger.ms", "2");
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c.create().map_err(kafka)
    }
}

fn kafka(e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable { system: "kafka", message: e.to_string() }
}

/// Creates the topics when missing: jobs with the configured partitions, results compacted, the DLQ, and the
/// webhook deliveries' states compacted.
/// Brokers that cannot create topics (librdkafka's mock cluster) are fine when the topics already exist.
pub async fn ensure_topics(cfg: &KafkaConfig) -> Result<(), QueueError> {
    let admin: AdminClient<DefaultClientContext> = cfg.client().create().map_err(kafka)?;
    let existing: Vec<String> = {
        let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(10)).map_err(kafka)?;
        metadata.topics().iter().filter(|t| t.error().is_none()).map(|t| t.name().to_owned()).collect()
    };
    let repl = || TopicReplication::Fixed(cfg.replication);
    let wanted = [
        NewTopic::new(&cfg.jobs_topic, cfg.partitions, repl()),
        NewTopic::new(&cfg.results_topic, cfg.partitions, repl()).set("cleanup.policy", "compact"),
        NewTopic::new(&cfg.dlq_topic, 1, repl()),
        NewTopic::new(&cfg.deliveries_topic, cfg.partitions, repl()).set("cleanup.policy", "compact"),
    ];
    let missing: Vec<&NewTopic> = wanted.iter().filter(|t| !existing.iter().any(|e| e == t.name)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let results =
        admin.create_topics(missing, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))).await;
    match results {
        Ok(results) => {
            for r in results {
                match r {
                    Ok(name) => tracing::info!(topic = %name, "created topic"),
                    Err((name, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {
                        tracing::debug!(topic = %name, "topic exists")
                    }
                    Err((name, code)) => return Err(kafka(format!("cannot create topic {name}: {code}"))),
                }
            }
            Ok(())
        }
        Err(e) => Err(kafka(format!("cannot create topics: {e}"))),
    }
}

/// Jobs in flight per partition, and what has been stored, so offsets advance only past finished jobs.
#[derive(Debug, Default)]
struct Tracker {
    partitions: HashMap<i32, PartitionState>,
}

#[derive(Debug)]
struct PartitionState {
    in_flight: BTreeSet<i64>,
    next_after_finished: i64,
    stored: i64,
}

impl Tracker {
    fn begin(&mut self, partition: i32, offset: i64) {
        // The first offset seen in a partition is where consumption resumed: nothing before it needs storing.
        let p = self.partitions.entry(partition).or_insert_with(|| PartitionState {
            in_flight: BTreeSet::new(),
            next_after_finished: offset,
            stored: offset,
        });
        p.in_flight.insert(offset);
    }

    /// The offset to store (the next one to consume) when this finish moves it forward.
    fn finish(&mut self, partition: i32, offset: i64) -> Option<i64> {
        let p = self.partitions.get_mut(&partition)?;
        if !p.in_flight.remove(&offset) {
            return None;
        }
        p.next_after_finished = p.next_after_finished.max(offset + 1);
        let resume = p.in_flight.first().copied().unwrap_or(p.next_after_finished);
        (resume > p.stored).then(|| {
            p.stored = resume;
            resume
        })
    }

    fn forget(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }
}

/// Clears the tracker for revoked partitions: their jobs are redelivered to the new owner.
struct Context {
    tracker: Arc<Mutex<Tracker>>,
}

impl ClientContext for Context {
    /// librdkafka's statistics (every `statistics.interval.ms`): the lag of each partition this member consumes.
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, t) in &statistics.topics {
            for (id, p) in &t.partitions {
                // -1 is the internal "unassigned" partition; lag is -1 until the first fetch.
                if *id < 0 || !p.desired || p.consumer_lag < 0 {
                    continue;
                }
                metrics::gauge!(metric::KAFKA_CONSUMER_LAG, "topic" => topic.clone(), "partition" => id.to_string())
                    .set(p.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut t = self.tracker.lock().unwrap_or_else(|e| e.into_inner());
            for e in tpl.elements() {
                t.forget(e.partition());
                // The new owner reports this partition's lag from now on.
                metrics::gauge!(metric::KAFKA_CONSUMER_LAG, "topic" => e.topic().to_owned(), "partition" => e.partition().to_string())
                    .set(0.0);
            }
            tracing::info!(partitions = tpl.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "partitions assigned");
        }
    }
}

/// A worker's connection: a member of the consumer group, and an idempotent producer.
pub struct KafkaWorkerQueue {
    cfg: KafkaConfig,
    /// Taken by `close`, which closes it on a blocking thread: librdkafka's close waits for the broker.
    consumer: Mutex<Option<Arc<StreamConsumer<Context>>>>,
    producer: FutureProducer,
    tracker: Arc<Mutex<Tracker>>,
}

impl std::fmt::Debug for KafkaWorkerQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaWorkerQueue").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl KafkaWorkerQueue {
    pub fn connect(cfg: &KafkaConfig) -> Result<KafkaWorkerQueue, QueueError> {
        let tracker = Arc::new(Mutex::new(Tracker::default()));
        let mut c = cfg.consumer_client();
        c.set("group.id", &cfg.group_id)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "500")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", cfg.session_timeout_ms.to_string())
            .set("heartbeat.interval.ms", (cfg.session_timeout_ms / 4).max(100).to_string())
            // The longest pause between two polls (librdkafka's default, stated): the run loop stops polling while
            // every permit is busy, so this bounds one job's time, not a batch's. A vanished member is expired by
            // the session timeout, not by this (tansu 0.6.0 stores it and uses it for nothing).
            .set("max.poll.interval.ms", "300000")
            .set("statistics.interval.ms", "5000")
            .set("partition.assignment.strategy", cfg.assignment.strategy());
        if let Some(id) = &cfg.group_instance_id {
            c.set("group.instance.id", id);
        }
        for (k, v) in &cfg.extra {
            c.set(k, v);
        }
        let consumer: StreamConsumer<Context> =
            c.create_with_context(Context { tracker: tracker.clone() }).map_err(kafka)?;
        consumer.subscribe(&[&cfg.jobs_topic]).map_err(kafka)?;
        Ok(KafkaWorkerQueue {
            cfg: cfg.clone(),
            consumer: Mutex::new(Some(Arc::new(consumer))),
            producer: cfg.producer()?,
            tracker,
        })
    }

    /// The consumer, until the queue is closed.
    fn consumer(&self) -> Option<Arc<StreamConsumer<Context>>> {
        self.consumer.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn traceparent_header(traceparent: Option<&str>) -> OwnedHeaders {
    let headers = OwnedHeaders::new();
    match traceparent {
        Some(tp) => headers.insert(Header { key: "traceparent", value: Some(tp) }),
        None => headers,
    }
}

impl KafkaWorkerQueue {
    /// Whether the broker answers and the jobs topic exists (for the worker's readiness check).
    pub async fn ready(&self) -> Result<(), QueueError> {
        topic_ready(&self.producer, &self.cfg.jobs_topic).await
    }

    /// Partitions of the jobs topic this member owns now (0 before the group has assigned any).
    pub fn assigned_partitions(&self) -> usize {
        self.consumer().and_then(|c| c.assignment().ok()).map_or(0, |tpl| tpl.count())
    }
}

impl WorkerQueue for KafkaWorkerQueue {
    fn messaging_system(&self) -> &'static str {
        "kafka"
    }

    fn consumer_group(&self) -> Option<&str> {
        Some(&self.cfg.group_id)
    }

    fn destinations(&self) -> (&str, &str) {
        (&self.cfg.jobs_topic, &self.cfg.results_topic)
    }

    async fn next(&self) -> Result<Option<Delivery>, QueueError> {
        let Some(consumer) = self.consumer() else { return Ok(None) };
        let m = consumer.recv().await.map_err(kafka)?;
        let traceparent = m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == "traceparent")
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_owned)
        });
        let delivery = Delivery {
            payload: m.payload().unwrap_or_default().to_vec(),
            traceparent,
            enqueued_at_ms: m.timestamp().to_millis().and_then(|t| u64::try_from(t).ok()),
            seq: u64::try_from(m.offset()).unwrap_or_default(),
            position: Some(Position { partition: m.partition(), offset: m.offset() }),
        };
        self.tracker.lock().unwrap_or_else(|e| e.into_inner()).begin(m.partition(), m.offset());
        Ok(Some(delivery))
    }

    async fn publish(&self, result: &JobResult, traceparent: Option<&str>) -> Result<(), QueueError> {
        let payload = serde_json::to_vec(result).map_err(|e| QueueError::Encode(e.to_string()))?;
        let record = FutureRecord::to(&self.cfg.results_topic)
            .key(&result.job_id)
            .payload(&payload)
            .headers(traceparent_header(traceparent));
        self.producer.send(record, self.cfg.send_timeout).await.map_err(|(e, _)| kafka(e))?;
        Ok(())
    }

    async fn progress(&self, update: &JobResult, traceparent: Option<&str>) {
        let Ok(payload) = serde_json::to_vec(update) else { return };
        let record = FutureRecord::to(&self.cfg.results_topic)
            .key(&update.job_id)
            .payload(&payload)
            .headers(traceparent_header(traceparent));
        // Queued, not awaited: the job's result follows on the same key, hence the same partition, in order.
        if let Err((e, _)) = self.producer.send_result(record) {
            tracing::debug!(job.id = %update.job_id, error = %e, "progress message not sent");
        }
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError> {
        let headers = traceparent_header(delivery.traceparent.as_deref())
            .insert(Header { key: "assay-dlq-reason", value: Some(reason) });
        let record: FutureRecord<'_, (), [u8]> =
            FutureRecord::to(&self.cfg.dlq_topic).payload(delivery.payload.as_slice()).headers(headers);
        self.producer.send(record, self.cfg.send_timeout).await.map_err(|(e, _)| kafka(e))?;
        Ok(())
    }

    fn done(&self, delivery: &Delivery) {
        let Some(Position { partition, offset }) = delivery.position else { return };
        let store = self.tracker.lock().unwrap_or_else(|e| e.into_inner()).finish(partition, offset);
        if let Some(resume) = store {
            let mut tpl = TopicPartitionList::new();
            if tpl.add_partition_offset(&self.cfg.jobs_topic, partition, Offset::Offset(resume)).is_ok() {
                // Fails only for a partition revoked meanwhile; its new owner starts from the last commit.
                let stored = self.consumer().map(|c| c.store_offsets(&tpl));
                if let Some(Err(e)) = stored {
                    tracing::debug!(partition, resume, error = %e, "offset not stored");
                }
            }
        }
    }

    async fn close(&self) {
        let consumer = self.consumer.lock().unwrap_or_else(|e| e.into_inner()).take();
        let producer = self.producer.clone();
        // Commit, leave the group, flush: each waits for the broker, so off the runtime's threads, and bounded.
        let closing = tokio::task::spawn_blocking(move || {
            if let Some(consumer) = consumer {
                if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                    tracing::debug!(error = %e, "final commit");
                }
                consumer.unsubscribe();
                // The last reference: librdkafka's close, which leaves the group, runs as it is dropped.
                drop(consumer);
            }
            if let Err(e) = producer.flush(Duration::from_secs(10)) {
                tracing::warn!(error = %e, "results not all delivered at close");
            }
        });
        if tokio::time::timeout(self.cfg.close_timeout, closing).await.is_err() {
            tracing::warn!(
                "leaving the consumer group takes over {} s: the group notices at its session timeout",
                self.cfg.close_timeout.as_secs()
            );
        }
    }
}

/// The submitting side over Kafka: an idempotent producer of jobs, and a reader of the results topic that hands
/// every message to every subscriber, waiting for slow ones rather than dropping anything.
pub struct KafkaSubmitter {
    cfg: KafkaConfig,
    producer: FutureProducer,
    updates: Arc<Fanout<JobResult>>,
    caught_up: Arc<std::sync::atomic::AtomicBool>,
    _reader: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for KafkaSubmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSubmitter").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl KafkaSubmitter {
    /// Connects; results are read from the start of the compacted topic (`from_start`) or from now on.
    pub fn connect(cfg: &KafkaConfig, from_start: bool) -> Result<KafkaSubmitter, QueueError> {
        let fanout = Arc::new(Fanout::new(cfg.subscriber_buffer));
        let mut c = cfg.consumer_client();
        // A reader of its own: every gateway sees every result.
        c.set("group.id", format!("{}-results-{}-{}", cfg.group_id, std::process::id(), jobs::now_ms()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", if from_start { "earliest" } else { "latest" });
        let consumer: Arc<StreamConsumer> = Arc::new(c.create().map_err(kafka)?);
        consumer.subscribe(&[&cfg.results_topic]).map_err(kafka)?;
        let updates = fanout.clone();
        // Reading from the start, this submitter is caught up once it has read to the end offsets the results
        // topic had when it connected; until then a job may be unknown to it (readiness says so).
        let caught_up = Arc::new(std::sync::atomic::AtomicBool::new(!from_start));
        let (topic, done) = (cfg.results_topic.clone(), caught_up.clone());
        let reader = tokio::spawn(async move {
            // Nothing is read before someone listens: the first messages are not handed to no one.
            updates.wait_for_subscriber().await;
            let mut behind = if from_start { end_offsets(&consumer, &topic).await } else { HashMap::new() };
            done.store(behind.is_empty(), std::sync::atomic::Ordering::Release);
            loop {
                match consumer.recv().await {
                    Ok(m) => {
                        match m.payload().map(serde_json::from_slice::<JobResult>) {
                            // Waits while a subscriber is behind: the topic keeps what is not read yet.
                            Some(Ok(r)) => updates.send(r).await,
                            Some(Err(e)) => tracing::warn!(error = %e, "undecodable result message"),
                            None => {}
                        }
                        if behind.get(&m.partition()).is_some_and(|end| m.offset() + 1 >= *end) {
                            behind.remove(&m.partition());
                            if behind.is_empty() {
                                // Read to the end is not yet known to the book: ready once the subscribers
                                // have taken every result read (nothing more is read meanwhile).
                                updates.drained().await;
                                tracing::info!(topic = %topic, "caught up with the results topic");
                                done.store(true, std::sync::atomic::Ordering::Release);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading results");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        Ok(KafkaSubmitter { cfg: cfg.clone(), producer: cfg.producer()?, updates: fanout, caught_up, _reader: reader })
    }
}

/// The topics [`ensure_topics`] makes, made on librdkafka's mock cluster (which has no CreateTopics), for tests
/// and benchmarks: jobs, results and deliveries with `partitions`, the DLQ with one.
pub fn create_mock_topics<C: rdkafka::producer::ProducerContext>(
    cluster: &rdkafka::mocking::MockCluster<'_, C>,
    cfg: &KafkaConfig,
    partitions: i32,
) -> Result<(), QueueError> {
    for (topic, n) in [
        (&cfg.jobs_topic, partitions),
        (&cfg.results_topic, partitions),
        (&cfg.dlq_topic, 1),
        (&cfg.deliveries_topic, partitions),
    ] {
        cluster.create_topic(topic, n, 1).map_err(kafka)?;
    }
    Ok(())
}

/// Publishes webhook delivery states (a notifier's side), keyed by job id.
pub struct DeliveryLog {
    producer: FutureProducer,
    topic: String,
    timeout: Duration,
}

impl std::fmt::Debug for DeliveryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryLog").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl DeliveryLog {
    pub fn connect(cfg: &KafkaConfig) -> Result<DeliveryLog, QueueError> {
        Ok(DeliveryLog { producer: cfg.producer()?, topic: cfg.deliveries_topic.clone(), timeout: cfg.send_timeout })
    }

    /// Writes a job's delivery state; the broker's acknowledgement is awaited.
    pub async fn publish(&self, update: &jobs::DeliveryUpdate) -> Result<(), QueueError> {
        let payload = serde_json::to_vec(update).map_err(|e| QueueError::Encode(e.to_string()))?;
        let record = FutureRecord::to(&self.topic).key(update.job_id.as_str()).payload(payload.as_slice());
        self.producer.send(record, self.timeout).await.map(|_| ()).map_err(|(e, _)| kafka(e))
    }
}

/// The webhook delivery states a gateway shows: the whole compacted topic read from the start into a bounded
/// map (the most recent jobs kept), and followed.
#[derive(Debug)]
pub struct DeliveryStatuses {
    known: Arc<Mutex<jobs::BoundedMap<String, jobs::WebhookStatus>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for DeliveryStatuses {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl DeliveryStatuses {
    /// Starts reading; call inside a tokio runtime.
    pub fn connect(cfg: &KafkaConfig, keep: usize) -> Result<DeliveryStatuses, QueueError> {
        let mut c = cfg.consumer_client();
        c.set("group.id", format!("{}-deliveries-{}-{}", cfg.group_id, std::process::id(), jobs::now_ms()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        let consumer: StreamConsumer = c.create().map_err(kafka)?;
        consumer.subscribe(&[&cfg.deliveries_topic]).map_err(kafka)?;
        let known = Arc::new(Mutex::new(jobs::BoundedMap::new(keep.max(1))));
        let map = known.clone();
        let reader = tokio::spawn(async move {
            loop {
                match consumer.recv().await {
                    Ok(m) => match m.payload().map(serde_json::from_slice::<jobs::DeliveryUpdate>) {
                        Some(Ok(u)) => {
                            map.lock().unwrap_or_else(|e| e.into_inner()).insert(u.job_id, u.webhook);
                        }
                        Some(Err(e)) => tracing::warn!(error = %e, "undecodable webhook delivery message"),
                        None => {}
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the webhook deliveries");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        Ok(DeliveryStatuses { known, reader })
    }

    /// The latest state of a job's delivery, once a notifier has published one.
    pub fn get(&self, job_id: &str) -> Option<jobs::WebhookStatus> {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).get(job_id).cloned()
    }
}

/// The end offset of every non-empty partition of `topic`, retried until the broker answers.
async fn end_offsets(consumer: &Arc<StreamConsumer>, topic: &str) -> HashMap<i32, i64> {
    loop {
        let (c, t) = (consumer.clone(), topic.to_owned());
        // librdkafka's metadata and watermark calls block: off the runtime's threads.
        let ends = tokio::task::spawn_blocking(move || -> Result<HashMap<i32, i64>, rdkafka::error::KafkaError> {
            let timeout = Duration::from_secs(5);
            let metadata = c.fetch_metadata(Some(&t), timeout)?;
            let mut ends = HashMap::new();
            for p in metadata.topics().iter().filter(|m| m.name() == t).flat_map(|m| m.partitions()) {
                let (low, high) = c.fetch_watermarks(&t, p.id(), timeout)?;
                if high > low {
                    ends.insert(p.id(), high);
                }
            }
            Ok(ends)
        })
        .await;
        match ends {
            Ok(Ok(ends)) => return ends,
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the results topic's end offsets; retrying"),
            Err(e) => tracing::warn!(error = %e, "reading the results topic's end offsets"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

impl Drop for KafkaSubmitter {
    fn drop(&mut self) {
        self._reader.abort();
    }
}

impl Submitter for KafkaSubmitter {
    fn messaging_system(&self) -> &'static str {
        "kafka"
    }

    fn destination(&self) -> &str {
        &self.cfg.jobs_topic
    }

    async fn submit(&self, job: &Job, traceparent: Option<&str>) -> Result<(), QueueError> {
        let payload = serde_json::to_vec(job).map_err(|e| QueueError::Encode(e.to_string()))?;
        let record = FutureRecord::to(&self.cfg.jobs_topic)
            .key(&job.model.sha256)
            .payload(&payload)
            .headers(traceparent_header(traceparent));
        self.producer.send(record, self.cfg.send_timeout).await.map_err(|(e, _)| kafka(e))?;
        Ok(())
    }

    fn subscribe(&self) -> mpsc::Receiver<JobResult> {
        self.updates.subscribe()
    }

    async fn ready(&self) -> Result<(), QueueError> {
        if !self.caught_up.load(std::sync::atomic::Ordering::Acquire) {
            return Err(kafka(format!(
                "still reading {} from the start: recent jobs may not be known yet",
                self.cfg.results_topic
            )));
        }
        topic_ready(&self.producer, &self.cfg.jobs_topic).await
    }
}

/// Whether the broker answers and `topic` exists with partitions (for readiness checks).
async fn topic_ready(producer: &FutureProducer, topic: &str) -> Result<(), QueueError> {
    let producer = producer.clone();
    let name = topic.to_owned();
    // librdkafka's metadata call blocks: keep it off the runtime's threads.
    let metadata = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(Some(&name), Duration::from_secs(2))
            .map(|m| m.topics().iter().any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty()))
    })
    .await
    .map_err(kafka)?;
    match metadata {
        Ok(true) => Ok(()),
        Ok(false) => Err(kafka(format!("topic {topic} is missing"))),
        Err(e) => Err(kafka(e)),
    }
}

/// Sends raw bytes to the jobs topic: what a broken or hostile client might send (for tests and tools).
pub async fn send_raw(
    cfg: &KafkaConfig,
    key: &str,
    payload: &[u8],
    traceparent: Option<&str>,
) -> Result<(), QueueError> {
    let producer = cfg.producer()?;
    let record = FutureRecord::to(&cfg.jobs_topic).key(key).payload(payload).headers(traceparent_header(traceparent));
    producer.send(record, cfg.send_timeout).await.map_err(|(e, _)| kafka(e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Tracker;

    #[test]
    fn offsets_advance_only_past_finished_jobs_in_order() {
        let mut t = Tracker::default();
        for o in 10..14 {
            t.begin(0, o);
        }
        assert_eq!(t.finish(0, 12), None, "10 and 11 are still running");
        assert_eq!(t.finish(0, 10), Some(11));
        assert_eq!(t.finish(0, 11), Some(13), "12 finished earlier");
        assert_eq!(t.finish(0, 13), Some(14));
        assert_eq!(t.finish(0, 13), None, "a second finish changes nothing");
        t.begin(1, 5);
        t.forget(1);
        assert_eq!(t.finish(1, 5), None, "a revoked partition stores nothing");
    }
}
