package io.github.kvcache4j.eval;

import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import javax.imageio.ImageIO;

/**
 * Draws needle-in-a-haystack heatmaps as PNG (headless Java2D): context length down, needle depth
 * across, a green cell where the key was retrieved and a red one where it was not. One image per
 * policy, and a summary image with every policy's map side by side.
 */
final class HeatmapPlot {

    private static final int CELL_W = 36;
    private static final int CELL_H = 26;
    private static final int LEFT = 60;
    private static final int TOP = 40;
    private static final int BOTTOM = 44;
    private static final int RIGHT = 48;
    private static final int COLUMNS = 4;
    private static final Color HIT = new Color(0x1a9850);
    private static final Color MISS = new Color(0xd73027);

    private HeatmapPlot() {
    }

    /** Writes one policy's heatmap to {@code png}; {@code title} names the model. */
    static void write(NeedleHeatmap.Grid grid, NeedleHeatmap.Map map, String title, Path png) throws IOException {
        BufferedImage image = new BufferedImage(panelWidth(grid), panelHeight(grid) + 24, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = canvas(image);
        g.drawString(title, 8, 16);
        panel(g, grid, map, 0, 24);
        save(image, png);
    }

    /** Writes every policy's heatmap into one image, {@value #COLUMNS} to a row. */
    static void writeSummary(NeedleHeatmap.Grid grid, List<NeedleHeatmap.Map> maps, String title, Path png)
            throws IOException {
        int rows = (maps.size() + COLUMNS - 1) / COLUMNS;
        int w = panelWidth(grid);
        int h = panelHeight(grid);
        BufferedImage image = new BufferedImage(w * Math.min(COLUMNS, maps.size()), h * rows + 24,
                BufferedImage.TYPE_INT_RGB);
        Graphics2D g = canvas(image);
        g.drawString(title, 8, 16);
        for (int i = 0; i < maps.size(); i++) {
            panel(g, grid, maps.get(i), i % COLUMNS * w, 24 + i / COLUMNS * h);
        }
        save(image, png);
    }

    private static int panelWidth(NeedleHeatmap.Grid grid) {
        return LEFT + grid.depths().length * CELL_W + RIGHT;
    }

    private static int panelHeight(NeedleHeatmap.Grid grid) {
        return TOP + grid.lengths().length * CELL_H + BOTTOM;
    }

    private static Graphics2D canvas(BufferedImage image) {
        Graphics2D g = image.createGraphics();
        g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, image.getWidth(), image.getHeight());
        g.setColor(Color.BLACK);
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        return g;
    }

    /** Draws one map with its axes at ({@code x}, {@code y}). */
    private static void panel(Graphics2D g, NeedleHeatmap.Grid grid, NeedleHeatmap.Map map, int x, int y) {
        g.setColor(Color.BLACK);
        g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 12));
        g.drawString(String.format(Locale.ROOT, "%s @ %.2f: %.0f%%", map.policy(), map.ratio(), 100 * map.accuracy()),
                x + LEFT, y + TOP - 12);
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 11));
        for (int r = 0; r < grid.lengths().length; r++) {
            int cy = y + TOP + r * CELL_H;
            g.setColor(Color.BLACK);
            g.drawString(Integer.toString(grid.lengths()[r]), x + 8, cy + CELL_H / 2 + 4);
            for (int c = 0; c < grid.depths().length; c++) {
                int cx = x + LEFT + c * CELL_W;
                g.setColor(map.correct()[r][c] ? HIT : MISS);
                g.fillRect(cx, cy, CELL_W - 2, CELL_H - 2);
            }
        }
        g.setColor(Color.BLACK);
        int axis = y + TOP + grid.lengths().length * CELL_H;
        for (int c = 0; c < grid.depths().length; c++) {
            g.drawString(String.format(Locale.ROOT, "%.0f", 100 * grid.depths()[c]), x + LEFT + c * CELL_W + 6, axis + 14);
        }
        g.drawString("depth % \u2192, rows: context tokens", x + LEFT, axis + 32);
    }

    private static void save(BufferedImage image, Path png) throws IOException {
        Files.createDirectories(png.toAbsolutePath().getParent());
        ImageIO.write(image, "png", png.toFile());
    }
}
