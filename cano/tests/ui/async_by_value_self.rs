use cano::prelude::*;

#[task]
trait Consume {
    async fn consume(self) -> u32;
}

fn main() {}
