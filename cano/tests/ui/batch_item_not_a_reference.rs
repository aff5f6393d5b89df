use cano::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Done,
}

// Without `type Item`, the item type is read off `item: &T`; here the item is taken by value.
struct ByValue;

#[task::batch(state = Step)]
impl ByValue {
    async fn load(&self, _res: &Resources) -> Result<Vec<u32>, CanoError> {
        Ok(vec![1])
    }

    async fn process_item(&self, item: u32) -> Result<u32, CanoError> {
        Ok(item)
    }

    async fn finish(
        &self,
        _res: &Resources,
        _outputs: Vec<Result<u32, CanoError>>,
    ) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

// Without `type ItemOutput`, the output type is read off `Result<T, _>`.
struct NoResult;

#[task::batch(state = Step)]
impl NoResult {
    type Item = u32;

    async fn load(&self, _res: &Resources) -> Result<Vec<u32>, CanoError> {
        Ok(vec![1])
    }

    async fn process_item(&self, item: &u32) -> Option<u32> {
        Some(*item)
    }

    async fn finish(
        &self,
        _res: &Resources,
        _outputs: Vec<Result<u32, CanoError>>,
    ) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

fn main() {}
