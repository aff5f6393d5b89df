use cano::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Done,
}

#[task::poll(state = Step)]
trait Ready: Send + Sync {
    async fn ready(&self) -> bool;
}

#[task::batch(key = String)]
trait Chunks: Send + Sync {
    async fn chunks(&self) -> Vec<Step>;
}

#[saga::task(state = Step, key = String)]
trait Undoable: Send + Sync {
    async fn undo(&self) -> Result<(), CanoError>;
}

fn main() {}
