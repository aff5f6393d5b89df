use cano::prelude::*;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Done,
}

struct Neither;

#[task(state = Step)]
impl Neither {
    fn name(&self) -> Cow<'static, str> {
        "neither".into()
    }
}

fn main() {
    let _ = Step::Done;
}
