//! kfac-check: an exact float64 reference for ENGD and KFAC on Poisson PINNs.
pub mod forward_laplacian;
pub mod gramian;
pub mod jacobians;
pub mod kronecker;
pub mod mlp;
pub mod pinn;
pub mod problem;
pub mod torch_rng;
