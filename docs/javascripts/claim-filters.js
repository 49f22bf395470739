// Filters on the claims index: show the entries matching lesson, verdict and component.
document$.subscribe(() => {
  const selects = ["f-lesson", "f-verdict", "f-component"].map((id) => document.getElementById(id));
  if (selects.some((s) => !s)) return;
  const apply = () => {
    const [lesson, verdict, component] = selects.map((s) => s.value);
    let shown = 0;
    document.querySelectorAll("div.claim").forEach((el) => {
      const ok = (!lesson || el.dataset.lesson === lesson) &&
                 (!verdict || el.dataset.verdict === verdict) &&
                 (!component || el.dataset.components.split(" ").includes(component));
      el.style.display = ok ? "" : "none";
      if (ok) shown += 1;
    });
    document.getElementById("f-count").textContent = `${shown} shown`;
  };
  selects.forEach((s) => s.addEventListener("change", apply));
  apply();
});
