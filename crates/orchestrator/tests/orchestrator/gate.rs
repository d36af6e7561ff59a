//! The promotion gate against a patient attacker: candidates that are each a
//! little worse than the last (every one within the margin of the current
//! model) and feedback that is an evaluation text in disguise.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bloginfer_fl::params::ParamSet;
use bloginfer_fl::spec::RunDir;
use bloginfer_model::classifier::names;
use bloginfer_model::data::{self, Example};
use bloginfer_model::{Checkpoint, ModelConfig, Pooling, Registry, TrainingMetadata};
use bloginfer_orchestrator::launcher::{BoxFuture, Launcher, Observed, RunPlan};
use bloginfer_orchestrator::snapshot::{self, FeedbackSample, Inputs};
use bloginfer_orchestrator::{Orchestrator, TrainingRequest, TriggerError};
use bloginfer_testkit::TestDb;
use bloginfer_text::{Granularity, Vocab};
use serde_json::{json, Value};

/// Evaluation texts: one character each, so a crafted model can get exactly
/// the ones it wants right. 250 of them make one text 0.4 point of accuracy.
const EVAL_TEXTS: u32 = 250;

fn evaluation() -> Vec<Example> {
    (0..EVAL_TEXTS)
        .map(|i| Example {
            text: char::from_u32(0x4E00 + i).unwrap().to_string(),
            label: i % 2,
        })
        .collect()
}

/// A model that classifies the first `right` evaluation texts correctly and
/// the rest wrongly: a one-unit LSTM whose input and output gates are open,
/// whose forget gate is shut and whose cell follows the sign of the
/// character's one-dimensional embedding; the output layer reads that sign.
fn crafted(evaluation: &[Example], right: usize) -> Checkpoint {
    let mut tokens = vec!["<pad>".to_string(), "<unk>".to_string()];
    tokens.extend(evaluation.iter().map(|e| e.text.clone()));
    let config = ModelConfig {
        vocab_size: tokens.len(),
        embed_dim: 1,
        hidden_dim: 1,
        num_classes: 2,
        pooling: Pooling::Last,
        bidirectional: false,
        dropout: 0.0,
        embed_dropout: 0.0,
        max_len: 4,
        granularity: Granularity::Char,
    };
    let mut params = ParamSet::zeros(&config);
    let mut set = |name: &str, values: Vec<f32>| {
        params.0.get_mut(name).unwrap().values = values;
    };
    let mut embedding = vec![0.0, 0.0];
    embedding.extend(evaluation.iter().enumerate().map(|(i, e)| {
        let positive = (e.label == 1) == (i < right);
        if positive {
            1.0
        } else {
            -1.0
        }
    }));
    set(names::EMBEDDING, embedding);
    // Gate order i, f, g, o.
    set(names::W_IH, vec![0.0, 0.0, 5.0, 0.0]);
    set(names::B_IH, vec![10.0, -10.0, 0.0, 10.0]);
    set(names::FC_W, vec![-1.0, 1.0]);
    Checkpoint {
        config,
        vocab: Vocab::from_tokens(tokens).unwrap(),
        weights: params.to_tensors().unwrap(),
        metadata: TrainingMetadata {
            method: "crafted".into(),
            ..TrainingMetadata::default()
        },
    }
}

/// Finishes each run at once with the next of the versions it was given,
/// as an aggregator that stored that model would.
struct Finisher {
    versions: Mutex<VecDeque<String>>,
}

impl Launcher for Finisher {
    fn name(&self) -> &'static str {
        "finisher"
    }

    fn start<'a>(
        &'a self,
        _plan: &'a RunPlan,
    ) -> BoxFuture<'a, bloginfer_orchestrator::Result<Value>> {
        let version = self.versions.lock().unwrap().pop_front();
        Box::pin(async move { Ok(json!({ "version": version })) })
    }

    fn observe<'a>(
        &'a self,
        plan: &'a RunPlan,
        handle: &'a Value,
    ) -> BoxFuture<'a, bloginfer_orchestrator::Result<(Observed, Option<Value>)>> {
        let result = json!({
            "run_id": plan.run_id,
            "phase": "finished",
            "round": 1,
            "rounds": 1,
            "clients_available": 0,
            "selected": 0,
            "reported": 0,
            "history": [],
            "version": handle["version"],
            "error": null,
        });
        let path = RunDir::new(&plan.dir).result();
        Box::pin(async move {
            std::fs::write(&path, result.to_string()).unwrap();
            Ok((Observed::Finished, None))
        })
    }

    fn stop<'a>(
        &'a self,
        _plan: &'a RunPlan,
        _handle: &'a Value,
    ) -> BoxFuture<'a, bloginfer_orchestrator::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn roll_out<'a>(
        &'a self,
        _version: &'a str,
    ) -> BoxFuture<'a, bloginfer_orchestrator::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

async fn run_to_the_end(orchestrator: &Orchestrator) -> bloginfer_orchestrator::store::Run {
    let started = Instant::now();
    let id = loop {
        match orchestrator
            .trigger(TrainingRequest::default(), "tests")
            .await
        {
            Ok(id) => break id,
            // The previous run's driver frees its slot just after recording its end.
            Err(TriggerError::Active(_)) => {}
            Err(e) => panic!("cannot start a run: {e}"),
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no free slot");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    loop {
        let run = orchestrator.run(&id).await.unwrap().unwrap();
        if run.status.is_terminal() {
            return run;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "run {id} never ended: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn orchestrator_over(dir: &Path, db: bloginfer_db::Db, versions: Vec<String>) -> Orchestrator {
    let mut config = crate::api::config(dir);
    config.min_interval = Duration::ZERO;
    config.evaluation = Arc::new(evaluation());
    let launcher = Arc::new(Finisher {
        versions: Mutex::new(versions.into()),
    });
    Orchestrator::build(config, db, launcher, None).unwrap()
}

/// Each candidate is 0.4 point worse than the one before: within the half
/// point margin of the current model every time, so comparing with the
/// current model alone lets accuracy slide without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_each_a_little_worse_than_the_last_are_eventually_refused() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::sqlite();
    let db = bloginfer_db::connect(&test_db.url).await.unwrap();
    let registry = Registry::open(dir.path().join("models")).unwrap();
    let evaluation = evaluation();
    let versions: Vec<String> = (0..6)
        .map(|k| registry.publish(&crafted(&evaluation, 225 - k)).unwrap())
        .collect();
    let orchestrator = orchestrator_over(dir.path(), db, versions.clone());
    let mut best: f64 = 0.0;
    let mut refused = 0;
    for (k, version) in versions.iter().enumerate() {
        let run = run_to_the_end(&orchestrator).await;
        assert_eq!(
            run.phase,
            if run.promoted { "promoted" } else { "rejected" }
        );
        assert_eq!(run.candidate_version.as_deref(), Some(version.as_str()));
        let accuracy = run.candidate_accuracy.unwrap();
        let expected = f64::from(225 - u32::try_from(k).unwrap()) / f64::from(EVAL_TEXTS);
        assert!((accuracy - expected).abs() < 1e-9, "{accuracy} {expected}");
        if run.promoted {
            assert!(
                accuracy + 0.005 + 1e-9 >= best,
                "candidate {k} ({accuracy}) promoted though the best promoted had {best}: {:?}",
                run.decision
            );
            best = best.max(accuracy);
        } else {
            refused += 1;
        }
    }
    assert!(refused > 0, "every candidate was promoted");
    assert_eq!(
        registry.current().unwrap().as_deref(),
        Some(versions[1].as_str()),
        "the last one within the margin of the best stays current"
    );
}

/// The floor is the best accuracy ever promoted on this evaluation split,
/// remembered across restarts of the orchestrator, and named in the decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_survives_a_restart_of_the_orchestrator() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::sqlite();
    let registry = Registry::open(dir.path().join("models")).unwrap();
    let evaluation = evaluation();
    // 0.900, then 0.896 (promoted), then, after a restart, 0.892: within the
    // margin of the current 0.896 but not of the best 0.900.
    let versions: Vec<String> = [225, 224, 223]
        .into_iter()
        .map(|right| registry.publish(&crafted(&evaluation, right)).unwrap())
        .collect();
    let first = orchestrator_over(
        dir.path(),
        bloginfer_db::connect(&test_db.url).await.unwrap(),
        versions[..2].to_vec(),
    );
    assert!(run_to_the_end(&first).await.promoted);
    assert!(run_to_the_end(&first).await.promoted);
    drop(first);
    let second = orchestrator_over(
        dir.path(),
        bloginfer_db::connect(&test_db.url).await.unwrap(),
        versions[2..].to_vec(),
    );
    let run = run_to_the_end(&second).await;
    assert!(!run.promoted, "{:?}", run.decision);
    assert_eq!(run.phase, "rejected");
    let decision = run.decision.unwrap_or_default();
    assert!(decision.contains(&versions[0]), "{decision}");
}

fn feedback(id: i64, text: &str, label: u32) -> FeedbackSample {
    FeedbackSample {
        id,
        text: text.to_string(),
        label,
        shard_key: format!("user:{id}"),
    }
}

/// An evaluation text with a space, punctuation, a changed character, full
/// width letters, a zero-width space or a tail added is still that text: it
/// must not be trained on, or the gate judges a model on answers it was shown.
#[test]
fn near_duplicates_of_evaluation_texts_are_not_trained_on() {
    let dir = tempfile::tempdir().unwrap();
    let evaluation = vec![
        Example {
            text: "这家店的服务态度非常好，下次还会再来".into(),
            label: 1,
        },
        Example {
            text: "Battery life is terrible, it died after two hours".into(),
            label: 0,
        },
        Example {
            text: "物流太慢了，等了整整两个星期才到货".into(),
            label: 0,
        },
    ];
    let disguised = [
        "这家店的服务态度非常好，下次还会再来 ",
        "这家店的服务态度非常好，下次还会再来！",
        "这家店的服务态度非常好。下次还会再来",
        "这家店的服务态度非常棒，下次还会再来",
        "这家店的服务\u{200b}态度非常好，下次还会再来",
        "  这家店的 服务态度 非常好 下次还会再来",
        "ＢＡＴＴＥＲＹ ＬＩＦＥ ＩＳ ＴＥＲＲＩＢＬＥ, it died after two hours",
        "battery life is terrible it died after two hours!!!",
        "Battery life is terrible, it died after three hours",
        "物流太慢了，等了整整两个星期才到货。差评差评，再也不买了",
    ];
    let genuine = [
        "包装很精美，送人很有面子",
        "客服回复很及时，问题很快就解决了",
        "Great screen, but the speakers are weak",
    ];
    let mut samples = Vec::new();
    for (i, text) in disguised.iter().enumerate() {
        samples.push(feedback(i64::try_from(i).unwrap(), text, 1));
    }
    for (i, text) in genuine.iter().enumerate() {
        samples.push(feedback(100 + i64::try_from(i).unwrap(), text, 1));
    }
    let corpus = crate::api::corpus(20);
    let inputs = Inputs {
        corpus: &corpus,
        evaluation: &evaluation,
        feedback: &samples,
        model: &ModelConfig::default(),
        min_count: 1,
        workers: 2,
        seed: 7,
    };
    let snap = snapshot::write(dir.path(), &inputs, "secret").unwrap();
    let mut used = snap.feedback_ids.clone();
    used.sort_unstable();
    assert_eq!(
        used,
        vec![100, 101, 102],
        "only the genuine samples are used"
    );
    assert_eq!(snap.feedback_samples, 3);
    let mut trained = Vec::new();
    for i in 0..2 {
        let shard = RunDir::new(dir.path())
            .worker(&i.to_string())
            .join("shard.tsv");
        trained.extend(data::read_tsv(&shard).unwrap());
    }
    for text in disguised {
        assert!(
            !trained.iter().any(|e| e.text == text),
            "{text:?} was trained on"
        );
    }
}

/// The cost of the near-duplicate check on the real corpus: the bundled
/// corpus's evaluation split indexed, and its whole training split (and
/// five times as many variants of it) looked up as if it were feedback.
/// Run it with `--ignored --nocapture`; it asserts only a generous bound.
#[test]
#[ignore = "a measurement; run by hand"]
fn near_duplicate_check_cost_on_the_bundled_corpus() {
    use bloginfer_orchestrator::overlap::HeldOut;
    let (train, evaluation) = data::split(
        data::bundled_corpus(),
        data::VALIDATION_FRACTION,
        data::VALIDATION_SEED,
    );
    let started = Instant::now();
    let held = HeldOut::new(evaluation.iter().map(|e| e.text.as_str()));
    let index = started.elapsed();
    let started = Instant::now();
    let flagged: Vec<&str> = train
        .iter()
        .filter(|e| held.contains(&e.text))
        .map(|e| e.text.as_str())
        .collect();
    let lookups = started.elapsed();
    let flagged_sample = flagged.iter().take(8).collect::<Vec<_>>();
    let flagged = flagged.len();
    let variants: Vec<String> = (0..5)
        .flat_map(|k| train.iter().map(move |e| format!("{}{k}！", e.text)))
        .collect();
    let started = Instant::now();
    let flagged_variants = variants.iter().filter(|t| held.contains(t)).count();
    let variant_lookups = started.elapsed();
    println!(
        "evaluation texts {}, index {index:?}; training texts {} looked up in {lookups:?} \
         ({flagged} flagged); {} variants in {variant_lookups:?} ({flagged_variants} flagged)",
        evaluation.len(),
        train.len(),
        variants.len(),
    );
    println!("training texts flagged, for instance: {flagged_sample:?}");
    assert!(
        lookups + variant_lookups < Duration::from_secs(60),
        "does not hang"
    );
}
