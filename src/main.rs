use kfac_check::*;
fn main() {
    let mlp = mlp::Mlp::from_name(mlp::ModelName::Tanh64, 2);
    for nb in [1, 120] {
        let data = problem::Data::generate(0, 900, nb, 2);
        let pinn = pinn::Pinn::new(mlp.clone(), problem::Equation::Poisson, data);
        let theta = mlp.init_params(1);
        let l = pinn.losses(&theta);
        println!("{:?} {:?} {:.10} {:.10} l2={:?}", l.total(), l, l.interior, l.boundary, pinn.l2_error(&theta));
    }
}
