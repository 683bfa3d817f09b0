//! NSGA-II (Deb, Pratap, Agarwal & Meyarivan, 2002) on the discrete genomes of a
//! [`SearchSpace`](crate::space::SearchSpace): fast non-dominated sorting, crowding distance,
//! binary tournaments, uniform crossover and per-gene mutation; hard limits enter through
//! Deb's constrained domination (a candidate within the limits beats any outside them; of two
//! outside, the smaller violation wins).
//!
//! Why a small implementation of our own: the Rust multi-objective crates found work on
//! continuous vectors with their own evaluation loop, while the search evaluates trials in
//! other processes (claimed from a study database) and needs each step as a pure function of
//! the results so far, so that every worker plans the same next generation.
//!
//! Every objective here is minimised; callers negate the ones to maximise (accuracy).

use rand::Rng;

/// One evaluated point: objective values (all minimised) and by how much it breaks the hard
/// limits (0 when within them).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub objectives: Vec<f64>,
    pub violation: f64,
}

impl Point {
    pub fn feasible(&self) -> bool {
        self.violation <= 0.0
    }
}

/// Constrained domination: `a` is preferred to `b` whatever their objectives when only `a` is
/// within the limits or `a` breaks them less; between two feasible points, Pareto dominance.
pub fn dominates(a: &Point, b: &Point) -> bool {
    match (a.feasible(), b.feasible()) {
        (true, false) => true,
        (false, true) => false,
        (false, false) => a.violation < b.violation,
        (true, true) => {
            let mut better = false;
            for (x, y) in a.objectives.iter().zip(&b.objectives) {
                if x > y {
                    return false;
                }
                better |= x < y;
            }
            better
        }
    }
}

/// The fronts of `points`: indices of the non-dominated ones first, then those dominated only
/// by the first front, and so on. Deb's O(M N²) algorithm.
pub fn non_dominated_sort(points: &[Point]) -> Vec<Vec<usize>> {
    let n = points.len();
    let mut dominated_by_me: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut domination_count = vec![0usize; n];
    for i in 0..n {
        for j in (i + 1)..n {
            if dominates(&points[i], &points[j]) {
                dominated_by_me[i].push(j);
                domination_count[j] += 1;
            } else if dominates(&points[j], &points[i]) {
                dominated_by_me[j].push(i);
                domination_count[i] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| domination_count[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominated_by_me[i] {
                domination_count[j] -= 1;
                if domination_count[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        fronts.push(current);
        current = next;
    }
    fronts
}

/// Crowding distance of each member of `front` (same order): the perimeter of the box its
/// neighbours span, per objective normalised by the front's range; the extremes get infinity
/// so the front's ends always survive.
pub fn crowding_distance(points: &[Point], front: &[usize]) -> Vec<f64> {
    let n = front.len();
    let mut distance = vec![0.0; n];
    if n <= 2 {
        return vec![f64::INFINITY; n];
    }
    let objectives = points[front[0]].objectives.len();
    for m in 0..objectives {
        let mut order: Vec<usize> = (0..n).collect();
        let value = |k: usize| points[front[k]].objectives[m];
        order.sort_by(|&a, &b| value(a).total_cmp(&value(b)).then(a.cmp(&b)));
        let (lo, hi) = (value(order[0]), value(order[n - 1]));
        distance[order[0]] = f64::INFINITY;
        distance[order[n - 1]] = f64::INFINITY;
        let range = hi - lo;
        if range <= 0.0 || !range.is_finite() {
            continue;
        }
        for k in 1..n - 1 {
            distance[order[k]] += (value(order[k + 1]) - value(order[k - 1])) / range;
        }
    }
    distance
}

/// Every point's front number (0 = non-dominated) and crowding distance within its front.
pub fn rank_and_crowding(points: &[Point]) -> (Vec<usize>, Vec<f64>) {
    let mut rank = vec![0; points.len()];
    let mut crowding = vec![0.0; points.len()];
    for (r, front) in non_dominated_sort(points).iter().enumerate() {
        for (k, d) in front.iter().zip(crowding_distance(points, front)) {
            rank[*k] = r;
            crowding[*k] = d;
        }
    }
    (rank, crowding)
}

/// Indices of `points` ordered best first: by front, then by crowding distance (larger
/// first), then by index so that the order is the same in every process.
pub fn ranked(points: &[Point]) -> Vec<usize> {
    let (rank, crowding) = rank_and_crowding(points);
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| {
        rank[a]
            .cmp(&rank[b])
            .then(crowding[b].total_cmp(&crowding[a]))
            .then(a.cmp(&b))
    });
    order
}

/// Binary tournament on positions of a best-first order: the better of two drawn at random.
pub fn tournament<R: Rng>(rng: &mut R, population: usize) -> usize {
    let a = rng.random_range(0..population);
    let b = rng.random_range(0..population);
    a.min(b)
}

/// Uniform crossover: each gene from either parent with equal chance.
pub fn crossover<R: Rng>(rng: &mut R, a: &[usize], b: &[usize]) -> Vec<usize> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| if rng.random_bool(0.5) { x } else { y })
        .collect()
}

/// Redraws each gene with probability `rate` among its other choices.
pub fn mutate<R: Rng>(rng: &mut R, genome: &mut [usize], sizes: &[usize], rate: f64) {
    for (gene, &n) in genome.iter_mut().zip(sizes) {
        if n > 1 && rng.random_bool(rate.clamp(0.0, 1.0)) {
            let other = rng.random_range(0..n - 1);
            *gene = if other >= *gene { other + 1 } else { other };
        }
    }
}

/// A uniformly random genome.
pub fn random_genome<R: Rng>(rng: &mut R, sizes: &[usize]) -> Vec<usize> {
    sizes
        .iter()
        .map(|&n| rng.random_range(0..n.max(1)))
        .collect()
}

/// One child of `parents` (best first): two tournaments, crossover, then mutation at a rate
/// of one gene per genome on average.
pub fn child<R: Rng>(rng: &mut R, parents: &[Vec<usize>], sizes: &[usize]) -> Vec<usize> {
    let a = &parents[tournament(rng, parents.len())];
    let b = &parents[tournament(rng, parents.len())];
    let mut genome = crossover(rng, a, b);
    mutate(rng, &mut genome, sizes, 1.0 / sizes.len().max(1) as f64);
    genome
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn p(objectives: &[f64]) -> Point {
        Point {
            objectives: objectives.to_vec(),
            violation: 0.0,
        }
    }

    #[test]
    fn domination_needs_no_worse_everywhere_and_better_somewhere() {
        assert!(dominates(&p(&[1.0, 1.0]), &p(&[1.0, 2.0])));
        assert!(!dominates(&p(&[1.0, 2.0]), &p(&[1.0, 1.0])));
        assert!(!dominates(&p(&[1.0, 1.0]), &p(&[1.0, 1.0])));
        assert!(!dominates(&p(&[0.0, 2.0]), &p(&[1.0, 1.0])));
        let outside = Point {
            objectives: vec![0.0, 0.0],
            violation: 0.5,
        };
        let further = Point {
            objectives: vec![0.0, 0.0],
            violation: 1.5,
        };
        assert!(dominates(&p(&[9.0, 9.0]), &outside));
        assert!(!dominates(&outside, &p(&[9.0, 9.0])));
        assert!(dominates(&outside, &further));
    }

    #[test]
    fn sorting_finds_the_fronts_of_a_known_set() {
        // Minimising both: (1,5) (2,3) (4,1) are the first front; (2,5) (3,4) (5,2) the second;
        // (5,5) the third.
        let points: Vec<Point> = [
            [3.0, 4.0],
            [1.0, 5.0],
            [5.0, 5.0],
            [2.0, 3.0],
            [5.0, 2.0],
            [4.0, 1.0],
            [2.0, 5.0],
        ]
        .iter()
        .map(|o| p(o))
        .collect();
        let fronts = non_dominated_sort(&points);
        let sorted = |v: &Vec<usize>| {
            let mut v = v.clone();
            v.sort();
            v
        };
        assert_eq!(sorted(&fronts[0]), vec![1, 3, 5]);
        assert_eq!(sorted(&fronts[1]), vec![0, 4, 6]);
        assert_eq!(fronts[2], vec![2]);
        assert_eq!(fronts.len(), 3);
    }

    #[test]
    fn a_brute_force_check_agrees_with_the_sort_on_random_sets() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..50 {
            let points: Vec<Point> = (0..30)
                .map(|_| Point {
                    objectives: (0..3).map(|_| rng.random_range(0..6) as f64).collect(),
                    violation: if rng.random_bool(0.2) { 1.0 } else { 0.0 },
                })
                .collect();
            let (rank, _) = rank_and_crowding(&points);
            for i in 0..points.len() {
                // A point's rank is one more than the largest rank of those dominating it.
                let expected = (0..points.len())
                    .filter(|&j| dominates(&points[j], &points[i]))
                    .map(|j| rank[j] + 1)
                    .max()
                    .unwrap_or(0);
                assert_eq!(rank[i], expected);
            }
        }
    }

    #[test]
    fn crowding_gives_extremes_infinity_and_sums_normalised_gaps() {
        let points: Vec<Point> = [[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]]
            .iter()
            .map(|o| p(o))
            .collect();
        let d = crowding_distance(&points, &[0, 1, 2, 3]);
        assert!(d[0].is_infinite() && d[3].is_infinite());
        // Point 1: neighbours 0 and 2 span 3 of 4 in both objectives.
        assert!((d[1] - 1.5).abs() < 1e-12);
        assert!((d[2] - 1.5).abs() < 1e-12);
        assert!(
            crowding_distance(&points, &[0, 1])
                .iter()
                .all(|d| d.is_infinite())
        );
    }

    #[test]
    fn ranked_puts_the_front_first_and_its_extremes_before_its_middle() {
        let points: Vec<Point> = [[5.0, 5.0], [0.0, 4.0], [2.0, 2.1], [4.0, 0.0], [1.0, 3.0]]
            .iter()
            .map(|o| p(o))
            .collect();
        let order = ranked(&points);
        assert_eq!(&order[..2], &[1, 3]);
        assert_eq!(order[4], 0);
    }

    #[test]
    fn mutation_stays_in_range_and_changes_genes() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let sizes = [1, 2, 3, 7];
        let mut changed = 0;
        for _ in 0..200 {
            let mut g = vec![0, 1, 2, 6];
            mutate(&mut rng, &mut g, &sizes, 0.5);
            assert_eq!(g[0], 0);
            assert!(g.iter().zip(&sizes).all(|(x, n)| x < n));
            changed += (g != vec![0, 1, 2, 6]) as usize;
        }
        assert!(changed > 150, "{changed}");
        let mut g = vec![0, 1, 2, 6];
        mutate(&mut rng, &mut g, &sizes, 1.0);
        assert!(g[1] != 1 && g[2] != 2 && g[3] != 6);
    }

    #[test]
    fn crossover_takes_each_gene_from_a_parent() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (a, b) = (vec![0; 40], vec![1; 40]);
        let c = crossover(&mut rng, &a, &b);
        let ones = c.iter().filter(|&&x| x == 1).count();
        assert!((10..30).contains(&ones), "{ones}");
    }

    #[test]
    fn tournaments_favour_the_better_positions() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut wins = [0usize; 4];
        for _ in 0..4000 {
            wins[tournament(&mut rng, 4)] += 1;
        }
        // P(position k) = ((4-k)² - (3-k)²) / 16: 7, 5, 3, 1 sixteenths.
        assert!(
            wins[0] > wins[1] && wins[1] > wins[2] && wins[2] > wins[3],
            "{wins:?}"
        );
    }

    #[test]
    fn selection_on_a_toy_problem_approaches_its_pareto_front() {
        // Two objectives over genomes of 8 genes in 0..10: f1 = sum, f2 = sum of (9 - g).
        // Any genome is Pareto-optimal, so a real test needs a trade-off with a penalty:
        // f2 = sum of (9 - g) + 5 · (number of odd genes). The front: genomes of even genes.
        let sizes = vec![10; 8];
        let eval = |g: &Vec<usize>| {
            let s: usize = g.iter().sum();
            let odd = g.iter().filter(|&&x| x % 2 == 1).count();
            p(&[
                s as f64,
                (g.iter().map(|x| 9 - x).sum::<usize>() + 5 * odd) as f64,
            ])
        };
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut population: Vec<Vec<usize>> =
            (0..20).map(|_| random_genome(&mut rng, &sizes)).collect();
        let odd_at_start: usize = population
            .iter()
            .map(|g| g.iter().filter(|&&x| x % 2 == 1).count())
            .sum();
        for _ in 0..40 {
            let order = ranked(&population.iter().map(eval).collect::<Vec<_>>());
            let parents: Vec<Vec<usize>> = order.iter().map(|&i| population[i].clone()).collect();
            let children: Vec<Vec<usize>> =
                (0..20).map(|_| child(&mut rng, &parents, &sizes)).collect();
            let all: Vec<Vec<usize>> = parents.into_iter().chain(children).collect();
            let order = ranked(&all.iter().map(eval).collect::<Vec<_>>());
            population = order[..20].iter().map(|&i| all[i].clone()).collect();
        }
        let odd_at_end: usize = population
            .iter()
            .map(|g| g.iter().filter(|&&x| x % 2 == 1).count())
            .sum();
        assert!(odd_at_start > 40, "{odd_at_start}");
        assert!(odd_at_end <= 4, "{odd_at_end}");
    }
}
