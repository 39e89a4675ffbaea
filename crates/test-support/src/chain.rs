pub struct TestChain;
