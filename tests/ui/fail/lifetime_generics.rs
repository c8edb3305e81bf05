struct View<'a> {
    name: &'a str,
}

#[canopy::service]
impl<'a> View<'a> {
    fn init() -> Self {
        View { name: "" }
    }
}

fn main() {}
