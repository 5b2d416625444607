// Sizes and counts as people read them: 1.5 MiB, 12.3 M, 4,096.

export function bytesText(value) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let size = value;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return unit ? `${Number(size.toPrecision(3))} ${units[unit]}` : `${value} B`;
}

export function countText(value) {
  if (value >= 1e9) return `${Number((value / 1e9).toPrecision(3))} G`;
  if (value >= 1e6) return `${Number((value / 1e6).toPrecision(3))} M`;
  return value.toLocaleString("en-US");
}
