"""Training PSANet and the other Table 1 heads the way the paper describes (`python -m port.train`)."""
