// Routes the analysis views: #compare/… (run comparison), #sweeps and #sweep/<id> (leaderboards).

import { CompareView, parseCompareHash } from "./compare.js";
import { SweepView } from "./sweepview.js";

export function startAnalysisViews(compareRoot, sweepRoot) {
  const compare = new CompareView(compareRoot);
  const sweeps = new SweepView(sweepRoot);
  const route = () => {
    const hash = location.hash;
    const comparison = parseCompareHash(hash);
    if (comparison) compare.show(comparison);
    else compare.hide();
    const sweep = hash.match(/^#sweep\/(\d+)$/);
    if (sweep) sweeps.show(Number(sweep[1]));
    else if (hash === "#sweeps") sweeps.show(null);
    else sweeps.hide();
  };
  window.addEventListener("hashchange", route);
  route();
}
