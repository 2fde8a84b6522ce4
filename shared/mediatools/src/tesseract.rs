//! Tesseract OCR: the text in an image and how sure Tesseract is of it.

use std::path::Path;

use crate::process::{run, Limits};
use crate::ToolError;

/// Text read from an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Ocr {
    /// Lines joined by `\n`, paragraphs by a blank line.
    pub text: String,
    /// Mean word confidence, 0–1; None when no word was found.
    pub confidence: Option<f32>,
}

/// Reads the text in `image` (any format Leptonica reads: PNG, JPEG, WebP,
/// TIFF) with the `+`-joined Tesseract `languages` (e.g. `por+eng`).
pub async fn read_text(image: &Path, languages: &str, limits: Limits) -> Result<Ocr, ToolError> {
    let output = run(
        "tesseract",
        [
            image.as_os_str(),
            "stdout".as_ref(),
            "-l".as_ref(),
            languages.as_ref(),
            "tsv".as_ref(),
        ],
        // One thread: the machine's other cores serve other handlers.
        &[("OMP_THREAD_LIMIT", "1")],
        limits,
    )
    .await?;
    Ok(parse_tsv(&String::from_utf8_lossy(&output.stdout)))
}

/// Rebuilds the text from Tesseract's TSV (one row per word, with its block,
/// paragraph and line numbers and a confidence; -1 on layout rows).
fn parse_tsv(tsv: &str) -> Ocr {
    let mut text = String::new();
    let mut last_line: Option<(&str, &str, &str, &str)> = None;
    let (mut confidence_sum, mut words) = (0f64, 0u32);
    for row in tsv.lines().skip(1) {
        let columns: Vec<&str> = row.split('\t').collect();
        let [level, page, block, paragraph, line, _, _, _, _, _, confidence, word] = columns[..]
        else {
            continue;
        };
        let (Ok(confidence), word) = (confidence.parse::<f64>(), word.trim()) else {
            continue;
        };
        if level != "5" || word.is_empty() || confidence < 0.0 {
            continue;
        }
        let here = (page, block, paragraph, line);
        match last_line {
            Some(previous) if previous == here => text.push(' '),
            Some((page, block, paragraph, _))
                if (page, block, paragraph) == (here.0, here.1, here.2) =>
            {
                text.push('\n')
            }
            Some(_) => text.push_str("\n\n"),
            None => {}
        }
        text.push_str(word);
        last_line = Some(here);
        confidence_sum += confidence;
        words += 1;
    }
    Ocr {
        text,
        confidence: (words > 0).then(|| (confidence_sum / f64::from(words) / 100.0) as f32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuilds_lines_and_paragraphs_and_averages_word_confidence() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
            1\t1\t0\t0\t0\t0\t0\t0\t800\t200\t-1\t\n\
            4\t1\t1\t1\t1\t0\t33\t81\t551\t49\t-1\t\n\
            5\t1\t1\t1\t1\t1\t33\t81\t88\t45\t90\tOlá,\n\
            5\t1\t1\t1\t1\t2\t143\t82\t108\t47\t80\tação\n\
            5\t1\t1\t1\t2\t1\t33\t131\t88\t45\t70\trápida\n\
            5\t1\t2\t1\t1\t1\t33\t181\t88\t45\t60\t12345\n\
            5\t1\t2\t1\t1\t2\t33\t181\t88\t45\t95\t \n";
        let ocr = parse_tsv(tsv);
        assert_eq!(ocr.text, "Olá, ação\nrápida\n\n12345");
        assert!((ocr.confidence.unwrap() - 0.75).abs() < 1e-6);
        assert_eq!(parse_tsv("level\tpage_num\n").confidence, None);
    }
}
