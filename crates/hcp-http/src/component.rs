//! A component: what one pipeline stage contributes to `hcp serve` — its routes and its named
//! background tasks. The server merges the routes of the selected components behind the one
//! access layer, starts their tasks, and stops them all the same way.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;

use tokio_util::sync::CancellationToken;

use crate::Routes;

/// The future of a started task: `Err` carries why it failed.
pub type TaskFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One stage as the server runs it. Built by the stage crate's `component` constructor.
pub struct Component {
    /// The name `--components` selects it by (`ingest`, `board`, `alerts`, …).
    pub name: &'static str,
    /// Its endpoints, each with its access rule.
    pub routes: Routes,
    /// Its background tasks, started once the server is composed.
    pub tasks: Vec<Task>,
}

/// A background task not yet started: a name and how to start it with its stop token. A task
/// runs until the token is cancelled, then finishes what it holds and ends; ending any earlier
/// is a failure the server reports and stops on.
pub struct Task {
    /// Its name within the component (`consumer`, `evaluator`, …), as logs and errors show it.
    pub name: &'static str,
    start: Box<dyn FnOnce(CancellationToken) -> TaskFuture + Send>,
}

impl Task {
    /// Starts the task: the returned future runs it until `stop` is cancelled.
    pub fn start(self, stop: CancellationToken) -> TaskFuture {
        (self.start)(stop)
    }
}

/// What a task's future may end with: nothing, or a result whose error is reported.
pub trait TaskEnd {
    /// `Err` with the reason when the task failed.
    fn into_result(self) -> Result<(), String>;
}

impl TaskEnd for () {
    fn into_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display> TaskEnd for Result<(), E> {
    fn into_result(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

impl Component {
    /// A component serving `routes`, with no task yet.
    pub fn new(name: &'static str, routes: Routes) -> Self {
        Component { name, routes, tasks: Vec::new() }
    }

    /// Adds the background task `name`, started by `start` with its stop token.
    pub fn task<F, Fut>(mut self, name: &'static str, start: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskEnd,
    {
        self.tasks.push(Task {
            name,
            start: Box::new(move |stop| {
                let run = start(stop);
                Box::pin(async move { run.await.into_result() })
            }),
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_run_until_stopped_and_report_how_they_ended() {
        let component = Component::new("demo", Routes::new())
            .task("waits", |stop: CancellationToken| async move { stop.cancelled().await })
            .task("fails", |_| async { Err::<(), _>("no database") });
        assert_eq!(component.name, "demo");
        assert_eq!(component.tasks.iter().map(|t| t.name).collect::<Vec<_>>(), ["waits", "fails"]);
        let stop = CancellationToken::new();
        let mut tasks = component.tasks.into_iter();
        let waits = tokio::spawn(tasks.next().unwrap().start(stop.clone()));
        assert_eq!(tasks.next().unwrap().start(stop.clone()).await, Err("no database".to_string()));
        assert!(!waits.is_finished());
        stop.cancel();
        assert_eq!(waits.await.unwrap(), Ok(()));
    }
}
