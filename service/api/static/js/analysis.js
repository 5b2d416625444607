// Routes the analysis views: #compare/… (run comparison), #sweeps and #sweep/<id> (leaderboards),
// #registry[/<model>] (versions and aliases).

import { CompareView, parseCompareHash } from "./compare.js";
import { RegistryView } from "./registry.js";
import { SweepView } from "./sweepview.js";

export function startAnalysisViews(compareRoot, sweepRoot, registryRoot) {
  const compare = new CompareView(compareRoot);
  const sweeps = new SweepView(sweepRoot);
  const registry = new RegistryView(registryRoot);
  const route = () => {
    const hash = location.hash;
    const comparison = parseCompareHash(hash);
    if (comparison) compare.show(comparison);
    else compare.hide();
    const sweep = hash.match(/^#sweep\/(\d+)$/);
    if (sweep) sweeps.show(Number(sweep[1]));
    else if (hash === "#sweeps") sweeps.show(null);
    else sweeps.hide();
    const models = hash.match(/^#registry(?:\/(\w+))?$/);
    if (models) registry.show(models[1] || null);
    else registry.hide();
  };
  window.addEventListener("hashchange", route);
  route();
}
