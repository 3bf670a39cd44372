"""What the tests share: paths, AWS settings, the monitoring container, stand-in servers, the stack, notebooks."""
