/**
 * Rendering of Vega-Lite specs to SVG (Vega's headless renderer) and of SVG to PNG (resvg).
 *
 * Called by the `plot` activity and the HTML report. Both steps run in plain Node with no browser
 * and no canvas package: Vega lays out and measures text itself (`renderer: 'none'` is enough for
 * `toSVG`), and resvg rasterises with its own text shaping.
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** A Vega-Lite top-level spec, as built by `report/figures.ts`. */
export type VegaLiteSpec = TopLevelSpec;

/**
 * The font every figure asks for, as a CSS font-family list. Concrete families come first because
 * resvg-js 2.6 resolves the generic `sans-serif` to the first system font it loaded (DejaVu Serif on
 * Debian) whatever `sansSerifFamily` says, while it does honour named families. DejaVu Sans ships with
 * Debian and Ubuntu (fonts-dejavu-core); Liberation Sans and Noto Sans are common elsewhere; browsers
 * showing the SVG fall through to their own sans-serif.
 */
export const FIGURE_FONT = 'DejaVu Sans, Liberation Sans, Noto Sans, Arial, Helvetica, sans-serif';

/** Compiles a Vega-Lite spec and renders it to an SVG document; `FIGURE_FONT` unless the spec sets a font. */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const { spec: vegaSpec } = compile(spec, { config: { font: FIGURE_FONT } });
  // No renderer: the view only has to lay out the scenegraph that toSVG serialises.
  const view = new vega.View(vega.parse(vegaSpec), { renderer: 'none', logLevel: vega.Warn });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export interface SvgToPngOptions {
  /** Pixels per SVG unit; 2 gives a sharp image on high-density screens and in print. Default 2. */
  scale?: number;
  /** Background colour behind transparent areas (CSS colour). Default white, as figures are read on paper. */
  background?: string;
  /** Extra font files to load besides the system fonts, for machines without any. */
  fontFiles?: string[];
}

/**
 * Rasterises an SVG to PNG bytes with resvg, using the system fonts plus `fontFiles`. On a machine
 * with no fonts at all, resvg draws every shape but silently drops text: pass `fontFiles` there.
 */
export function svgToPng(svg: string, options: SvgToPngOptions = {}): Uint8Array {
  const scale = options.scale ?? 2;
  if (!(scale > 0) || !Number.isFinite(scale)) {
    throw new RangeError(`svgToPng: expected a positive finite scale; found ${scale}`);
  }
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: options.background ?? 'white',
    font: { loadSystemFonts: true, fontFiles: options.fontFiles ?? [] },
    logLevel: 'off',
  });
  const png = resvg.render().asPng();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}
